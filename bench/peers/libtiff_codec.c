/*
 * libtiff's CCITT codec on raw strips, in memory: the reference peer for fastfax's
 * interop tests and the anchor of its benchmarks.
 *
 * A page is one strip of packed rows (most significant bit = leftmost pixel, 1 = black,
 * Photometric MinIsWhite). ltc_encode writes it to an in-memory TIFF with
 * TIFFWriteEncodedStrip and hands back the coded strip as libtiff stored it (RTC / EOFB
 * included); ltc_decode wraps a coded strip in an in-memory TIFF and decodes it with
 * TIFFReadEncodedStrip. Both loop `iterations` times internally and report the elapsed
 * monotonic nanoseconds of the loop, so a caller's per-call overhead does not count.
 *
 * Build: gcc -O2 -shared -fPIC libtiff_codec.c -ltiff -o libtiff_codec.so
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tiffio.h>

/* ---- messages: libtiff's handlers are process-wide, the text is per thread ---- */

static _Thread_local char last_message[512];
static _Thread_local int warning_count;

static void on_error(const char *module, const char *fmt, va_list ap)
{
    int n = snprintf(last_message, sizeof last_message, "%s: ", module ? module : "libtiff");
    if (n >= 0 && (size_t)n < sizeof last_message)
        vsnprintf(last_message + n, sizeof last_message - (size_t)n, fmt, ap);
}

static void on_warning(const char *module, const char *fmt, va_list ap)
{
    warning_count++;
    on_error(module, fmt, ap);
}

static void install_handlers(void)
{
    TIFFSetErrorHandler(on_error);
    TIFFSetWarningHandler(on_warning);
}

/* The last error or warning libtiff reported on this thread ("" if none). */
const char *ltc_message(void) { return last_message; }

/* ---- an in-memory file for TIFFClientOpen ---- */

typedef struct {
    uint8_t *data;
    toff_t len, cap, pos;
} MemFile;

static tmsize_t mem_read(thandle_t h, void *buf, tmsize_t n)
{
    MemFile *m = (MemFile *)h;
    toff_t avail = m->pos < m->len ? m->len - m->pos : 0;
    if ((toff_t)n > avail)
        n = (tmsize_t)avail;
    memcpy(buf, m->data + m->pos, (size_t)n);
    m->pos += (toff_t)n;
    return n;
}

static tmsize_t mem_write(thandle_t h, void *buf, tmsize_t n)
{
    MemFile *m = (MemFile *)h;
    toff_t end = m->pos + (toff_t)n;
    if (end > m->cap) {
        toff_t cap = m->cap ? m->cap : 65536;
        while (cap < end)
            cap *= 2;
        uint8_t *grown = realloc(m->data, (size_t)cap);
        if (!grown)
            return -1;
        m->data = grown;
        m->cap = cap;
    }
    if (m->pos > m->len)
        memset(m->data + m->len, 0, (size_t)(m->pos - m->len));
    memcpy(m->data + m->pos, buf, (size_t)n);
    m->pos = end;
    if (end > m->len)
        m->len = end;
    return n;
}

static toff_t mem_seek(thandle_t h, toff_t off, int whence)
{
    MemFile *m = (MemFile *)h;
    if (whence == SEEK_CUR)
        off += m->pos;
    else if (whence == SEEK_END)
        off += m->len;
    m->pos = off;
    return off;
}

static int mem_close(thandle_t h) { (void)h; return 0; }
static toff_t mem_size(thandle_t h) { return ((MemFile *)h)->len; }

static int mem_map(thandle_t h, void **base, toff_t *size)
{
    MemFile *m = (MemFile *)h;
    *base = m->data;
    *size = m->len;
    return 1;
}

static void mem_unmap(thandle_t h, void *base, toff_t size) { (void)h; (void)base; (void)size; }

static TIFF *mem_open(MemFile *m, const char *mode)
{
    m->pos = 0;
    return TIFFClientOpen("memory", mode, (thandle_t)m, mem_read, mem_write, mem_seek,
                          mem_close, mem_size, mem_map, mem_unmap);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Tags of a one-strip bilevel MinIsWhite page. */
static int set_page_tags(TIFF *tif, uint32_t width, uint32_t height, int compression,
                         uint32_t t4options, int fillorder, float xres, float yres)
{
    int ok = TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, width) &&
             TIFFSetField(tif, TIFFTAG_IMAGELENGTH, height) &&
             TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 1) &&
             TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1) &&
             TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISWHITE) &&
             TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
             TIFFSetField(tif, TIFFTAG_FILLORDER, fillorder) &&
             TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, height) &&
             TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_INCH) &&
             TIFFSetField(tif, TIFFTAG_XRESOLUTION, xres) &&
             TIFFSetField(tif, TIFFTAG_YRESOLUTION, yres) &&
             TIFFSetField(tif, TIFFTAG_COMPRESSION, compression);
    if (ok && compression == COMPRESSION_CCITTFAX3)
        ok = TIFFSetField(tif, TIFFTAG_GROUP3OPTIONS, t4options);
    return ok;
}

/*
 * Code `height` packed rows of `width` pixels at `xres` x `yres` dpi (libtiff picks MR's
 * K from the vertical resolution: 4 above 150 dpi, else 2) with Compression
 * `compression` (2, 3 or 4), T4Options `t4options` (Compression 3) and FillOrder
 * `fillorder`, `iterations` times.
 * The coded strip of the last iteration goes to `out` (at most `out_cap` bytes; its
 * length to *out_len) and the time of the loop to *elapsed_ns.
 * Returns 0, or -1 with ltc_message() saying why.
 */
int ltc_encode(const uint8_t *rows, uint32_t width, uint32_t height, float xres, float yres,
               int compression, uint32_t t4options, int fillorder, int iterations, uint8_t *out,
               int64_t out_cap, int64_t *out_len, int64_t *elapsed_ns)
{
    install_handlers();
    last_message[0] = 0;
    if (!width || !height || iterations < 1) {
        snprintf(last_message, sizeof last_message, "width, height and iterations must be > 0");
        return -1;
    }
    MemFile m = {0};
    tmsize_t raw_size = (tmsize_t)((width + 7) / 8) * height;
    int result = -1;
    int64_t start = now_ns();
    for (int i = 0; i < iterations; i++) {
        m.len = 0;
        TIFF *tif = mem_open(&m, "w");
        if (!tif)
            goto done;
        int ok = set_page_tags(tif, width, height, compression, t4options, fillorder, xres,
                               yres) &&
                 TIFFWriteEncodedStrip(tif, 0, (void *)rows, raw_size) == raw_size;
        TIFFClose(tif);
        if (!ok)
            goto done;
    }
    *elapsed_ns = now_ns() - start;

    TIFF *tif = mem_open(&m, "r");
    if (!tif)
        goto done;
    uint64_t *counts = NULL;
    if (TIFFGetField(tif, TIFFTAG_STRIPBYTECOUNTS, &counts) && counts) {
        if ((int64_t)counts[0] > out_cap) {
            snprintf(last_message, sizeof last_message, "coded strip of %llu bytes > %lld",
                     (unsigned long long)counts[0], (long long)out_cap);
        } else {
            tmsize_t n = TIFFReadRawStrip(tif, 0, out, (tmsize_t)counts[0]);
            if (n >= 0) {
                *out_len = n;
                result = 0;
            }
        }
    }
    TIFFClose(tif);
done:
    free(m.data);
    return result;
}

/*
 * Decode the coded strip `strip` (`strip_len` bytes) into `height` packed rows of `width`
 * pixels at `xres` x `yres` dpi at `out` (exactly ((width + 7) / 8) * height bytes),
 * `iterations` times.
 * *warnings gets the number of warnings libtiff gave on the last iteration (libtiff
 * mends damaged rows with a warning), *elapsed_ns the time of the decoding loop.
 * Returns 0, or -1 with ltc_message() saying why.
 */
int ltc_decode(const uint8_t *strip, int64_t strip_len, uint32_t width, uint32_t height,
               float xres, float yres, int compression, uint32_t t4options, int fillorder,
               int iterations, uint8_t *out, int *warnings, int64_t *elapsed_ns)
{
    install_handlers();
    last_message[0] = 0;
    if (!width || !height || iterations < 1) {
        snprintf(last_message, sizeof last_message, "width, height and iterations must be > 0");
        return -1;
    }
    MemFile m = {0};
    tmsize_t raw_size = (tmsize_t)((width + 7) / 8) * height;
    int result = -1;
    TIFF *tif = mem_open(&m, "w");
    if (!tif)
        goto done;
    int ok = set_page_tags(tif, width, height, compression, t4options, fillorder, xres, yres) &&
             TIFFWriteRawStrip(tif, 0, (void *)strip, (tmsize_t)strip_len) == strip_len;
    TIFFClose(tif);
    if (!ok)
        goto done;

    tif = mem_open(&m, "r");
    if (!tif)
        goto done;
    int64_t start = now_ns();
    for (int i = 0; i < iterations; i++) {
        warning_count = 0;
        if (TIFFReadEncodedStrip(tif, 0, out, raw_size) != raw_size) {
            if (!last_message[0])
                snprintf(last_message, sizeof last_message, "short strip");
            TIFFClose(tif);
            goto done;
        }
    }
    *elapsed_ns = now_ns() - start;
    *warnings = warning_count;
    TIFFClose(tif);
    result = 0;
done:
    free(m.data);
    return result;
}
