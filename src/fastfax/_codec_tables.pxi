# Code tables of the T.4 / T.6 coder: included by _codec.pyx (one extension).

# ---------------------------------------------------------------------------------------
# Code tables (T.4 Tables 1, 2 and 3; T.6 Table 1), as bit strings.
_WHITE_TERM = (
    "00110101 000111 0111 1000 1011 1100 1110 1111 10011 10100 00111 01000 001000 000011 "
    "110100 110101 101010 101011 0100111 0001100 0001000 0010111 0000011 0000100 0101000 "
    "0101011 0010011 0100100 0011000 00000010 00000011 00011010 00011011 00010010 00010011 "
    "00010100 00010101 00010110 00010111 00101000 00101001 00101010 00101011 00101100 "
    "00101101 00000100 00000101 00001010 00001011 01010010 01010011 01010100 01010101 "
    "00100100 00100101 01011000 01011001 01011010 01011011 01001010 01001011 00110010 "
    "00110011 00110100"
).split()
_WHITE_MAKEUP = (  # 64, 128, ... 1728
    "11011 10010 010111 0110111 00110110 00110111 01100100 01100101 01101000 01100111 "
    "011001100 011001101 011010010 011010011 011010100 011010101 011010110 011010111 "
    "011011000 011011001 011011010 011011011 010011000 010011001 010011010 011000 010011011"
).split()
_BLACK_TERM = (
    "0000110111 010 11 10 011 0011 0010 00011 000101 000100 0000100 0000101 0000111 "
    "00000100 00000111 000011000 0000010111 0000011000 0000001000 00001100111 00001101000 "
    "00001101100 00000110111 00000101000 00000010111 00000011000 000011001010 000011001011 "
    "000011001100 000011001101 000001101000 000001101001 000001101010 000001101011 "
    "000011010010 000011010011 000011010100 000011010101 000011010110 000011010111 "
    "000001101100 000001101101 000011011010 000011011011 000001010100 000001010101 "
    "000001010110 000001010111 000001100100 000001100101 000001010010 000001010011 "
    "000000100100 000000110111 000000111000 000000100111 000000101000 000001011000 "
    "000001011001 000000101011 000000101100 000001011010 000001100110 000001100111"
).split()
_BLACK_MAKEUP = (  # 64, 128, ... 1728
    "0000001111 000011001000 000011001001 000001011011 000000110011 000000110100 "
    "000000110101 0000001101100 0000001101101 0000001001010 0000001001011 0000001001100 "
    "0000001001101 0000001110010 0000001110011 0000001110100 0000001110101 0000001110110 "
    "0000001110111 0000001010010 0000001010011 0000001010100 0000001010101 0000001011010 "
    "0000001011011 0000001100100 0000001100101"
).split()
_EXT_MAKEUP = (  # 1792, 1856, ... 2560, shared by both colours
    "00000001000 00000001100 00000001101 000000010010 000000010011 000000010100 "
    "000000010101 000000010110 000000010111 000000011100 000000011101 000000011110 "
    "000000011111"
).split()

# Encoder tables, indexed like libtiff's: 0..63 terminating codes, 63 + n for n * 64.
# Each entry is (code << 8) | length.
cdef uint32_t ENC_RUN[2][104]
# Decoder tables, indexed by the next 13 bits: (length << 12) | run, 0 = no such code;
# DEC_RUN9 holds the codes of up to 9 bits, indexed by the next 9 bits (1 KiB: it stays in
# the L1 cache), and 0 where the full table must be asked.
cdef uint16_t DEC_RUN[2][8192]
cdef uint16_t DEC_RUN9[2][512]
# A white terminating code then a black one (both runs 1..63) in 12 bits or fewer, indexed
# by the next 12 bits: (total length << 12) | (white run << 6) | black run; 0 = none.
# Decoding such pairs in one step halves the serial chain of table look-ups on text.
cdef uint16_t DEC_PAIR[4096]
# 2-D modes indexed by the next 7 bits: (length << 8) | (mode << 4) | (delta + 3).
cdef uint16_t DEC_MODE[128]
# Byte bit reversal.
cdef uint8_t REV[256]


def _build_tables():
    cdef int colour, i, n, run, length, code, shift
    for i in range(256):
        REV[i] = int(f"{i:08b}"[::-1], 2)
    for colour, (term, makeup) in enumerate(
        ((_WHITE_TERM, _WHITE_MAKEUP), (_BLACK_TERM, _BLACK_MAKEUP))
    ):
        codes = {run: bits for run, bits in enumerate(term)}
        codes.update({64 * (i + 1): bits for i, bits in enumerate(makeup)})
        codes.update({1792 + 64 * i: bits for i, bits in enumerate(_EXT_MAKEUP)})
        for i in range(8192):
            DEC_RUN[colour][i] = 0
        for i in range(512):
            DEC_RUN9[colour][i] = 0
        for run, bits in codes.items():
            index = run if run < 64 else 63 + run // 64
            ENC_RUN[colour][index] = (int(bits, 2) << 8) | len(bits)
            length = len(bits)
            code = int(bits, 2)
            shift = 13 - length
            for n in range(1 << shift):
                i = (code << shift) | n
                if DEC_RUN[colour][i]:
                    raise AssertionError(f"code table conflict at run {run}")
                DEC_RUN[colour][i] = (length << 12) | run
                if length <= 9:
                    DEC_RUN9[colour][i >> 4] = (length << 12) | run
    for i in range(4096):
        DEC_PAIR[i] = 0
    for wrun in range(1, 64):
        for brun in range(1, 64):
            bits = _WHITE_TERM[wrun] + _BLACK_TERM[brun]
            if len(bits) <= 12:
                shift = 12 - len(bits)
                for n in range(1 << shift):
                    DEC_PAIR[(int(bits, 2) << shift) | n] = (len(bits) << 12) | (wrun << 6) | brun
    modes = {"0001": (M_P, 0), "001": (M_H, 0), "1": (M_V, 0), "011": (M_V, 1),
             "000011": (M_V, 2), "0000011": (M_V, 3), "010": (M_V, -1),
             "000010": (M_V, -2), "0000010": (M_V, -3), "0000001": (M_EXT, 0)}
    for i in range(128):
        DEC_MODE[i] = 0
    for bits, (mode, delta) in modes.items():
        length = len(bits)
        shift = 7 - length
        for n in range(1 << shift):
            DEC_MODE[(int(bits, 2) << shift) | n] = (length << 8) | (mode << 4) | (delta + 3)


_build_tables()

