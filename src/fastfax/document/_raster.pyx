# cython: language_level=3
"""Binarisation hot path behind :mod:`fastfax.document.render`: grey pages to packed 1-bit pages.

Input is 8-bit grey, one byte a pixel, 0 = black, 255 = white, rows top to bottom.
Output is a packed fax page as :mod:`fastfax.page` defines it: ``(width + 7) // 8``
bytes a row, most significant bit = leftmost pixel, 1 = black.

Three steps, all without the GIL:

1. area-averaging resample of the grey source into a destination rectangle (each
   destination pixel is the mean of the source area it covers, exact fractional
   coverage on both axes; skipped when the sizes already match);
2. for ``MODE_AUTO``, a per-page choice between text and photo: the page is a photo when
   enough 16 x 16 blocks are mostly mid-tones;
3. a fixed threshold (text) or Floyd-Steinberg error diffusion, serpentine (photo),
   written at ``(x0, y0)`` into an otherwise white page.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int16_t, int32_t, uint8_t, uint32_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

from ..errors import FaxError

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    #if defined(__GNUC__) && defined(__x86_64__)
    #include <immintrin.h>
    #define FF_AVX2 1
    #endif
    /* Bit reversal of a byte: SSE2's movemask puts pixel 0 in bit 0, a fax byte wants it
       in bit 7. */
    static uint8_t ff_rev8[256];
    static int ff_use_avx2 = 0;
    static void ff_init(void) {
        for (int i = 0; i < 256; i++) {
            int r = 0;
            for (int b = 0; b < 8; b++) if (i & (1 << b)) r |= 0x80 >> b;
            ff_rev8[i] = (uint8_t)r;
        }
    #if FF_AVX2
        __builtin_cpu_init();
        ff_use_avx2 = __builtin_cpu_supports("avx2");
    #endif
    }
    #if FF_AVX2
    /* 32 pixels a step: the bytes of each group of 8 are reversed before movemask, so
       the mask's byte k holds pixels 8k..8k+7 with the first in bit 7, and stores as is
       (x86 is little-endian). Returns the pixels done, a multiple of 32. */
    __attribute__((target("avx2")))
    static int ff_threshold_avx2(const uint8_t *g, int n, int t, uint8_t *o) {
        const __m256i flip = _mm256_set1_epi8((char)0x80);
        const __m256i tv = _mm256_set1_epi8((char)(t ^ 0x80));
        const __m256i rev = _mm256_setr_epi8(
            7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8,
            7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8);
        int i = 0;
        for (; i + 32 <= n; i += 32) {
            __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(g + i)), flip);
            __m256i m = _mm256_shuffle_epi8(_mm256_cmpgt_epi8(tv, v), rev);
            uint32_t bits = (uint32_t)_mm256_movemask_epi8(m);
            memcpy(o, &bits, 4);
            o += 4;
        }
        return i;
    }
    #endif
    /* Pack n grey pixels into bits, 1 where grey < t, from the top bit of out[0]; the
       last byte's bits past n are 0. Every byte of out is assigned. */
    static void ff_threshold_bytes(const uint8_t *g, int n, int t, uint8_t *o) {
        int i = 0;
    #if FF_AVX2
        if (ff_use_avx2) {
            i = ff_threshold_avx2(g, n, t, o);
            o += i >> 3;
        }
    #endif
    #if defined(__SSE2__)
        const __m128i flip = _mm_set1_epi8((char)0x80);
        const __m128i tv = _mm_set1_epi8((char)(t ^ 0x80));
        for (; i + 16 <= n; i += 16) {
            __m128i v = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(g + i)), flip);
            int m = _mm_movemask_epi8(_mm_cmplt_epi8(v, tv));
            o[0] = ff_rev8[m & 0xFF];
            o[1] = ff_rev8[(m >> 8) & 0xFF];
            o += 2;
        }
    #endif
        for (; i < n; i += 8) {
            int b = 0;
            for (int k = 0; k < 8 && i + k < n; k++) b |= (g[i + k] < t) << (7 - k);
            *o++ = (uint8_t)b;
        }
    }
    /* Threshold n grey pixels into a packed row `out` of `stride` bytes at pixel `bit`,
       OR-ing into what is there; `tmp` holds (n + 7) / 8 bytes of scratch. */
    static void ff_threshold_row(const uint8_t *g, int n, int t, uint8_t *out, int bit,
                                 int stride, uint8_t *tmp) {
        int nb = (n + 7) >> 3, sh = bit & 7, first = bit >> 3;
        if (sh == 0) {
            ff_threshold_bytes(g, n, t, out + first);
            return;
        }
        ff_threshold_bytes(g, n, t, tmp);
        for (int i = 0; i < nb; i++) {
            out[first + i] |= (uint8_t)(tmp[i] >> sh);
            if (first + i + 1 < stride) out[first + i + 1] |= (uint8_t)(tmp[i] << (8 - sh));
        }
    }
    """
    void ff_init() nogil
    int ff_use_avx2
    void ff_threshold_row(const uint8_t *g, int n, int t, uint8_t *out, int bit, int stride,
                          uint8_t *tmp) nogil

ff_init()

cdef enum:
    M_TEXT = 0
    M_PHOTO = 1
    M_AUTO = 2

MODE_TEXT = M_TEXT
MODE_PHOTO = M_PHOTO
MODE_AUTO = M_AUTO

cdef enum:
    BLOCK = 16
    TONE_LO = 40     # grey levels strictly between these two are mid-tones
    TONE_HI = 215


cdef struct Axis:
    # For each destination pixel j: source pixels first[j] .. first[j] + count[j] - 1,
    # with weights (fractions of the destination pixel's extent) starting at wstart[j].
    int* first
    int* count
    int* wstart
    float* weight


cdef void axis_free(Axis* a) noexcept nogil:
    free(a.first)
    free(a.count)
    free(a.wstart)
    free(a.weight)


cdef int axis_build(Axis* a, int src, int dst) noexcept nogil:
    """Coverage of ``dst`` pixels over ``src`` pixels. On an axis of length src * dst,
    source pixel i spans [i * dst, (i + 1) * dst) and destination pixel j spans
    [j * src, (j + 1) * src). Returns 0, or -1 when out of memory."""
    cdef long long lo, hi, s_lo, s_hi, ov
    cdef int j, i, n = 0
    cdef int cap = src + 2 * dst
    a.first = <int*>malloc(dst * sizeof(int))
    a.count = <int*>malloc(dst * sizeof(int))
    a.wstart = <int*>malloc(dst * sizeof(int))
    a.weight = <float*>malloc(cap * sizeof(float))
    if a.first == NULL or a.count == NULL or a.wstart == NULL or a.weight == NULL:
        return -1
    for j in range(dst):
        lo = <long long>j * src
        hi = lo + src
        i = <int>(lo // dst)
        a.first[j] = i
        a.wstart[j] = n
        a.count[j] = 0
        while i < src and <long long>i * dst < hi:
            s_lo = <long long>i * dst
            s_hi = s_lo + dst
            ov = (s_hi if s_hi < hi else hi) - (s_lo if s_lo > lo else lo)
            if n < cap:
                a.weight[n] = <float>ov / <float>src
                n += 1
                a.count[j] += 1
            i += 1
    return 0


cdef int dense_axis(Axis* a, int src, int dst, int* taps, int** first,
                    float** weight) noexcept nogil:
    """The coverage of ``a`` as ``taps`` weights for every destination pixel j, for source
    pixels ``first[j]`` on, zeros where it covers fewer: a loop of fixed length, without
    branches the CPU could mispredict. A run that would pass the source's end starts
    earlier, behind zero weights, so every pixel read exists. Returns 0 or -1."""
    cdef int j, i, n = 1, shift
    for j in range(dst):
        if a.count[j] > n:
            n = a.count[j]
    if n > src:
        n = src
    taps[0] = n
    first[0] = <int*>malloc(dst * sizeof(int))
    weight[0] = <float*>calloc(<size_t>dst * n, sizeof(float))
    if first[0] == NULL or weight[0] == NULL:
        return -1
    for j in range(dst):
        shift = a.first[j] + n - src
        if shift < 0:
            shift = 0
        first[0][j] = a.first[j] - shift
        for i in range(a.count[j]):
            weight[0][<Py_ssize_t>j * n + shift + i] = a.weight[a.wstart[j] + i]
    return 0


cdef int area_resample(const uint8_t* src, Py_ssize_t sstride, int sw, int sh,
                       uint8_t* dst, int dw, int dh) noexcept nogil:
    """Area-average ``sw`` x ``sh`` grey into ``dw`` x ``dh`` grey. Returns 0 or -1.

    Each destination pixel is the sum, in source order, of its source pixels times their
    weights, first along rows (a fixed number of taps, see :func:`dense_axis`; the
    extra taps add exact zeros) then down the columns."""
    cdef Axis ax, ay
    cdef float* hrow = NULL
    cdef float* acc = NULL
    cdef int* hfirst = NULL
    cdef float* hw = NULL
    cdef int taps = 0
    cdef int cached = -1
    cdef int x, y, k, r, i, rc = 0
    cdef float wy, s
    cdef const uint8_t* srow
    cdef const uint8_t* p
    cdef const float* w
    memset(&ax, 0, sizeof(Axis))
    memset(&ay, 0, sizeof(Axis))
    if axis_build(&ax, sw, dw) < 0 or axis_build(&ay, sh, dh) < 0:
        rc = -1
    elif dense_axis(&ax, sw, dw, &taps, &hfirst, &hw) < 0:
        rc = -1
    hrow = <float*>malloc(dw * sizeof(float))
    acc = <float*>malloc(dw * sizeof(float))
    if hrow == NULL or acc == NULL:
        rc = -1
    if rc == 0:
        for y in range(dh):
            for x in range(dw):
                acc[x] = 0
            for k in range(ay.count[y]):
                r = ay.first[y] + k
                wy = ay.weight[ay.wstart[y] + k]
                if r != cached:
                    srow = src + r * sstride
                    if taps == 2:
                        for x in range(dw):
                            p = srow + hfirst[x]
                            w = hw + 2 * x
                            hrow[x] = <float>(p[0] * w[0]) + <float>(p[1] * w[1])
                    else:
                        for x in range(dw):
                            p = srow + hfirst[x]
                            w = hw + <Py_ssize_t>taps * x
                            s = 0
                            for i in range(taps):
                                s = s + p[i] * w[i]
                            hrow[x] = s
                    cached = r
                for x in range(dw):
                    acc[x] = acc[x] + hrow[x] * wy
            for x in range(dw):
                s = acc[x] + 0.5
                dst[<Py_ssize_t>y * dw + x] = <uint8_t>(255 if s >= 255 else (0 if s < 0 else s))
    axis_free(&ax)
    axis_free(&ay)
    free(hfirst)
    free(hw)
    free(hrow)
    free(acc)
    return rc


cdef int is_photo(const uint8_t* g, Py_ssize_t gstride, int w, int h,
                  double min_fraction) noexcept nogil:
    """1 when at least ``min_fraction`` of the 16 x 16 blocks are half or more mid-tones."""
    cdef int bx, by, x, y, tone, toneblocks = 0, blocks = 0, v
    cdef int nbx = w // BLOCK
    cdef int nby = h // BLOCK
    cdef const uint8_t* p
    for by in range(nby):
        for bx in range(nbx):
            tone = 0
            for y in range(by * BLOCK, by * BLOCK + BLOCK, 2):
                p = g + y * gstride + bx * BLOCK
                for x in range(0, BLOCK, 2):
                    v = p[x]
                    tone += TONE_LO < v < TONE_HI
            blocks += 1
            toneblocks += tone * 2 >= (BLOCK // 2) * (BLOCK // 2)
    if blocks == 0:
        return 0
    return toneblocks >= min_fraction * blocks


cdef int dither(const uint8_t* g, Py_ssize_t gstride, int w, int h,
                uint8_t* out, int ostride, int x0, int y0) noexcept nogil:
    """Floyd-Steinberg, serpentine, errors in 1/16 grey levels. Returns 0 or -1."""
    cdef int16_t* cur = <int16_t*>calloc(w + 2, sizeof(int16_t))
    cdef int16_t* nxt = <int16_t*>calloc(w + 2, sizeof(int16_t))
    cdef int16_t* tmp
    cdef int x, y, step, start, end, v, e, bit
    cdef uint8_t* orow
    if cur == NULL or nxt == NULL:
        free(cur)
        free(nxt)
        return -1
    for y in range(h):
        orow = out + <Py_ssize_t>(y0 + y) * ostride
        memset(nxt, 0, (w + 2) * sizeof(int16_t))
        if y & 1:
            start, end, step = w - 1, -1, -1
        else:
            start, end, step = 0, w, 1
        x = start
        while x != end:
            v = g[<Py_ssize_t>y * gstride + x] * 16 + cur[x + 1]
            if v < 128 * 16:
                bit = x0 + x
                orow[bit >> 3] |= <uint8_t>(0x80 >> (bit & 7))
                e = v
            else:
                e = v - 255 * 16
            # Clamp so a long run of saturated error cannot overflow int16.
            if e > 4080:
                e = 4080
            elif e < -4080:
                e = -4080
            cur[x + 1 + step] += (e * 7) >> 4
            nxt[x + 1 - step] += (e * 3) >> 4
            nxt[x + 1] += (e * 5) >> 4
            nxt[x + 1 + step] += e >> 4
            x += step
        tmp = cur
        cur = nxt
        nxt = tmp
    free(cur)
    free(nxt)
    return 0


def binarize(const uint8_t[:, :] src not None, int page_w, int page_h, int x0, int y0,
             int dst_w, int dst_h, int mode=MODE_TEXT, int threshold=128,
             double photo_fraction=0.05):
    """Resample grey ``src`` (rows, columns) into the ``dst_w`` x ``dst_h`` rectangle at
    ``(x0, y0)`` of a white ``page_w`` x ``page_h`` page and binarise it.

    ``threshold``: grey levels below it are black (text mode). ``photo_fraction``: the
    share of mid-tone blocks from which ``MODE_AUTO`` picks photo. Returns
    ``(packed page bytes, mode used)``. The caller checks that the rectangle lies inside
    the page and that ``src`` has unit stride along rows.
    """
    cdef int sh = src.shape[0]
    cdef int sw = src.shape[1]
    cdef Py_ssize_t sstride = src.strides[0]
    cdef int ostride = (page_w + 7) >> 3
    cdef uint8_t* grey = NULL
    cdef uint8_t* tmp = NULL
    cdef const uint8_t* g
    cdef Py_ssize_t gstride
    cdef int rc = 0, y, used = mode
    if src.strides[1] != 1:
        raise FaxError("grey source rows must be contiguous")
    if not (0 <= x0 and 0 <= y0 and dst_w >= 0 and dst_h >= 0
            and x0 + dst_w <= page_w and y0 + dst_h <= page_h):
        raise FaxError("destination rectangle lies outside the page")
    if not 1 <= threshold <= 255:
        raise FaxError(f"threshold must be from 1 to 255, got {threshold}")
    out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>ostride * page_h)
    cdef uint8_t* o = <uint8_t*>PyBytes_AS_STRING(out)
    memset(o, 0, <Py_ssize_t>ostride * page_h)
    if dst_w == 0 or dst_h == 0 or sw == 0 or sh == 0:
        return out, MODE_TEXT if mode == MODE_AUTO else mode
    with nogil:
        if sw == dst_w and sh == dst_h:
            g = &src[0, 0]
            gstride = sstride
        else:
            grey = <uint8_t*>malloc(<Py_ssize_t>dst_w * dst_h)
            if grey == NULL or area_resample(&src[0, 0], sstride, sw, sh,
                                             grey, dst_w, dst_h) < 0:
                rc = -1
            g = grey
            gstride = dst_w
        if rc == 0:
            if used == M_AUTO:
                used = M_PHOTO if is_photo(g, gstride, dst_w, dst_h, photo_fraction) \
                    else M_TEXT
            if used == M_PHOTO:
                rc = dither(g, gstride, dst_w, dst_h, o, ostride, x0, y0)
            else:
                tmp = <uint8_t*>malloc((dst_w + 7) >> 3)
                if tmp == NULL:
                    rc = -1
                else:
                    for y in range(dst_h):
                        ff_threshold_row(g + y * gstride, dst_w, threshold,
                                         o + <Py_ssize_t>(y0 + y) * ostride, x0, ostride, tmp)
                    free(tmp)
        free(grey)
    if rc < 0:
        raise MemoryError("out of memory while binarising a page")
    return out, used


cdef class TextPage:
    """A white packed ``page_w`` x ``page_h`` page filled band by band with thresholded
    grey rows (text mode, no resampling), so that the grey source can be drawn a band at
    a time into a buffer small enough to stay in the CPU's cache.

    The page's bytes are private to the builder until :meth:`take` hands them out.
    """

    cdef object _data
    cdef uint8_t* _out
    cdef uint8_t* _tmp
    cdef int _w, _h, _stride

    def __cinit__(self, int page_w, int page_h):
        if page_w <= 0 or page_h < 0:
            raise FaxError(f"a page of {page_w} x {page_h} pixels cannot be built")
        self._w = page_w
        self._h = page_h
        self._stride = (page_w + 7) >> 3
        self._data = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>self._stride * page_h)
        self._out = <uint8_t*>PyBytes_AS_STRING(self._data)
        memset(self._out, 0, <Py_ssize_t>self._stride * page_h)
        self._tmp = <uint8_t*>malloc(self._stride + 1)
        if self._tmp == NULL:
            raise MemoryError("out of memory while building a page")

    def __dealloc__(self):
        free(self._tmp)

    def threshold(self, const uint8_t[:, :] grey not None, int x0, int y0,
                  int threshold=128):
        """Make black the pixels of ``grey`` (rows, columns; 0 = black) below
        ``threshold``, its top left pixel at ``(x0, y0)`` of the page."""
        cdef int rows = grey.shape[0]
        cdef int cols = grey.shape[1]
        cdef int y
        if self._out == NULL:
            raise FaxError("the page was already taken")
        if cols and grey.strides[1] != 1:
            raise FaxError("grey source rows must be contiguous")
        if not (0 <= x0 and 0 <= y0 and x0 + cols <= self._w and y0 + rows <= self._h):
            raise FaxError("the grey band lies outside the page")
        if not 1 <= threshold <= 255:
            raise FaxError(f"threshold must be from 1 to 255, got {threshold}")
        if rows == 0 or cols == 0:
            return
        with nogil:
            for y in range(rows):
                ff_threshold_row(&grey[y, 0], cols, threshold,
                                 self._out + <Py_ssize_t>(y0 + y) * self._stride,
                                 x0, self._stride, self._tmp)

    def take(self) -> bytes:
        """The packed page (rows of ``(page_w + 7) // 8`` bytes, the first pixel in the
        top bit, 1 = black); the builder is done with."""
        if self._out == NULL:
            raise FaxError("the page was already taken")
        data = self._data
        self._data = None
        self._out = NULL
        return data
