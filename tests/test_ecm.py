"""fastfax.t30.ecm: blocks, PPS, PPR round trips through HDLC with losses, CTC/EOR, RNR/RR."""

from __future__ import annotations

import random

import pytest

from fastfax.link.hdlc import Decoder, Encoder
from fastfax.t30.ecm import MAX_PPR, EcmError, EcmReceiver, EcmSender
from fastfax.t30.frames import FCF, Frame, Pps, parse_fcd, ppr_frames


def through_line(frames: list[bytes], rng: random.Random, loss: float) -> list[bytes]:
    """HDLC-encode the frames, flip bits in some, and return what decodes with a good FCS,
    shuffled a little and with some duplicates."""
    enc = Encoder(max_len=300)
    stream = bytearray(enc.encode_frames(frames))
    for _ in range(int(len(frames) * loss)):
        stream[rng.randrange(len(stream))] ^= 1 << rng.randrange(8)
    got = [f.data for f in Decoder(max_len=300).feed(bytes(stream)) if f.ok]
    got += rng.sample(got, len(got) // 10)
    for _ in range(len(got) // 5):
        i, j = rng.randrange(len(got)), rng.randrange(len(got))
        got[i], got[j] = got[j], got[i]
    return got


@pytest.mark.parametrize("frame_size, size", [(256, 200_000), (64, 20_000), (256, 100)])
def test_page_survives_losses(frame_size, size):
    rng = random.Random(size)
    data = rng.randbytes(size)
    sender = EcmSender(data, frame_size=frame_size, page=3, command=FCF.MPS)
    receiver = EcmReceiver(frame_size=frame_size)
    for block in range(len(sender.blocks)):
        frames = sender.block_frames(block)
        for _ in range(20):
            for raw in through_line(frames, rng, loss=0.05):
                receiver.add(raw)
            answer, fif = receiver.on_pps(sender.pps(block))
            if answer == FCF.MCF:
                break
            assert answer == FCF.PPR
            assert ppr_frames(fif) == receiver.missing()
            frames = sender.answer_ppr(block, Frame(FCF.PPR, fif).encode())
            # Only the frames asked for come again (plus the RCPs).
            assert [parse_fcd(f)[0] for f in frames if Frame.parse(f).fcf == FCF.FCD] == (
                ppr_frames(fif)
            )
        else:
            pytest.fail("block never completed")
    assert receiver.pages == [data]


def test_blocks_and_pps():
    sender = EcmSender(bytes(256 * 300 + 5), page=258, command=FCF.EOP)
    assert [len(b) for b in sender.blocks] == [256, 45]
    assert len(sender.blocks[1][-1]) == 5
    first = Pps.parse(Frame.parse(sender.pps(0)).fif)
    last = Pps.parse(Frame.parse(sender.pps(1)).fif)
    assert first == Pps(None, 2, 0, 256) and last == Pps(FCF.EOP, 2, 1, 45)
    frames = sender.block_frames(1)
    assert len(frames) == 45 + 3
    assert [Frame.parse(f).fcf for f in frames[-3:]] == [FCF.RCP] * 3
    assert parse_fcd(frames[0]) == (0, bytes(256))


def test_ppr_count_asks_for_ctc_or_eor():
    sender = EcmSender(bytes(1000))
    fif = bytes([0x01]) + bytes(31)
    for _ in range(MAX_PPR - 1):
        sender.answer_ppr(0, fif)
        assert not sender.must_ctc_or_eor(0)
    sender.answer_ppr(0, fif)
    assert sender.must_ctc_or_eor(0)
    sender.continue_to_correct(0)
    assert not sender.must_ctc_or_eor(0)


def test_rnr_rr_ctc_eor():
    sender = EcmSender(bytes(range(256)) * 4, command=FCF.EOM)
    receiver = EcmReceiver()
    for raw in sender.block_frames(0)[1:]:
        receiver.add(raw)
    receiver.ready = False
    assert receiver.on_pps(sender.pps(0)) == (FCF.RNR, None)
    receiver.ready = True
    answer, fif = receiver.on_rr()
    assert answer == FCF.PPR and ppr_frames(fif) == [0]
    assert receiver.on_ctc() == FCF.CTR
    assert receiver.on_eor() == FCF.ERR and receiver.missing() == []
    with pytest.raises(EcmError):
        receiver.on_rr()


def test_bad_input():
    with pytest.raises(EcmError):
        EcmSender(b"")
    with pytest.raises(EcmError):
        EcmSender(b"x", frame_size=128)
    with pytest.raises(EcmError):
        EcmSender(b"x").block_frames(1)
    receiver = EcmReceiver(frame_size=64)
    with pytest.raises(EcmError, match="over 64"):
        receiver.add(Frame(FCF.FCD, b"\x00" + bytes(65)).encode())
    with pytest.raises(EcmError):
        receiver.add(Frame(FCF.MCF).encode())
    with pytest.raises(EcmError):
        receiver.on_pps(Frame(FCF.MCF).encode())
    small = EcmReceiver(max_page=100)
    small.add(Frame(FCF.FCD, b"\x00" + bytes(200)).encode())
    with pytest.raises(EcmError, match="max_page"):
        small.on_pps(Frame(FCF.PPS, Pps(FCF.EOP, 0, 0, 1).encode()).encode())
