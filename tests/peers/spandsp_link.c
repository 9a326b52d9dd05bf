/* SpanDSP as a peer for fastfax's link layer (HDLC, FCS, T.30 DIS/DCS).
 *
 * Bit streams on stdin/stdout are packed least significant bit first (the first bit on
 * the line in bit 0), as fastfax packs them; SpanDSP's byte interface is most
 * significant bit first, so every byte is reversed with SpanDSP's bit_reverse8.
 * Frame lists are records of a 4-octet little-endian length and the octets.
 *
 *   spandsp_link tx CRC32 IFFLAGS       frames on stdin -> bit stream on stdout
 *   spandsp_link rx CRC32 MAXLEN THRESH bit stream on stdin -> one line a frame
 *                                       ("G|B hex") and "S good crc len aborts bytes"
 *   spandsp_link crc                    frames on stdin -> "fcs16 fcs32" a line
 *   spandsp_link t30 MODEMS RES SIZES COMP ECM TIFF
 *                                       an answering and a calling T.30 engine talk;
 *                                       prints "A|C hex" for each frame each sends
 *   spandsp_link bench CRC32 ROUNDS     frames on stdin -> "octets tx rx crc16 crc32
 *                                       frames": CPU nanoseconds a pass (ROUNDS passes a run)
 *                                       to make the bit stream, deframe it, and take the
 *                                       FCS-16 / FCS-32 of all the octets in one call
 *                                       (best of 15 runs)
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <tiffio.h>
#include <spandsp.h>

typedef struct { uint8_t *data; size_t len; } blob_t;

static uint8_t *read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    *len = n;
    return buf;
}

static blob_t *read_frames(int *count)
{
    size_t len, pos = 0;
    uint8_t *all = read_all(stdin, &len);
    int n = 0, cap = 64;
    blob_t *frames = malloc(cap * sizeof(blob_t));
    while (pos + 4 <= len) {
        uint32_t flen = all[pos] | all[pos + 1] << 8 | all[pos + 2] << 16 | (uint32_t) all[pos + 3] << 24;
        pos += 4;
        if (pos + flen > len)
            break;
        if (n == cap)
            frames = realloc(frames, (cap *= 2) * sizeof(blob_t));
        frames[n].data = all + pos;
        frames[n].len = flen;
        n++;
        pos += flen;
    }
    *count = n;
    return frames;
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* ---- HDLC transmit ------------------------------------------------------------------ */

typedef struct { hdlc_tx_state_t *tx; blob_t *frames; int n; int next; int done; } tx_feed_t;

static void tx_underflow(void *user_data)
{
    tx_feed_t *f = user_data;
    if (f->next < f->n) {
        hdlc_tx_frame(f->tx, f->frames[f->next].data, f->frames[f->next].len);
        f->next++;
    } else {
        f->done = 1;
    }
}

/* Encode every frame; return the stream (MSB first, as SpanDSP makes it). */
static uint8_t *tx_stream(blob_t *frames, int n, int crc32, int ifflags, size_t *out_len)
{
    tx_feed_t feed = {0};
    size_t cap = 1024, len = 0;
    uint8_t *out = malloc(cap);
    feed.tx = hdlc_tx_init(NULL, crc32, ifflags, 0, tx_underflow, &feed);
    feed.frames = frames;
    feed.n = n;
    hdlc_tx_flags(feed.tx, 2);      /* opening flags; their end asks for the first frame */
    while (!feed.done) {
        if (len + 256 > cap)
            out = realloc(out, cap *= 2);
        len += hdlc_tx_get(feed.tx, out + len, 256);
    }
    /* The last frame's closing flag and a few more flags. */
    len += hdlc_tx_get(feed.tx, out + len, 4);
    hdlc_tx_free(feed.tx);
    *out_len = len;
    return out;
}

static int cmd_tx(int crc32, int ifflags)
{
    int n;
    size_t len, i;
    blob_t *frames = read_frames(&n);
    uint8_t *out = tx_stream(frames, n, crc32, ifflags, &len);
    for (i = 0; i < len; i++)
        out[i] = bit_reverse8(out[i]);
    fwrite(out, 1, len, stdout);
    return 0;
}

/* ---- HDLC receive ------------------------------------------------------------------- */

typedef struct { hdlc_rx_state_t *rx; unsigned long crc_errors; long frames; } rx_sink_t;

static void rx_status(void *user_data, int status)
{
    (void) user_data;
    (void) status;
}

static void rx_frame(void *user_data, const uint8_t *pkt, int len, int ok)
{
    rx_sink_t *sink = user_data;
    hdlc_rx_stats_t st;
    int i;
    if (pkt == NULL)
        return;
    hdlc_rx_get_stats(sink->rx, &st);
    sink->frames++;
    if (!ok && st.crc_errors == sink->crc_errors)
        return;                     /* a length error: SpanDSP counts it after this call */
    sink->crc_errors = st.crc_errors;
    printf("%c ", ok ? 'G' : 'B');
    for (i = 0; i < len; i++)
        printf("%02x", pkt[i]);
    printf("\n");
}

static int cmd_rx(int crc32, int maxlen, int thresh)
{
    rx_sink_t sink = {0};
    hdlc_rx_stats_t st;
    size_t len, i;
    uint8_t *in = read_all(stdin, &len);
    for (i = 0; i < len; i++)
        in[i] = bit_reverse8(in[i]);
    sink.rx = hdlc_rx_init(NULL, crc32, 1, thresh, rx_frame, &sink);
    hdlc_rx_set_status_handler(sink.rx, rx_status, NULL);
    hdlc_rx_set_max_frame_len(sink.rx, maxlen);
    /* Fed in uneven pieces, as a modem would deliver them. */
    for (i = 0; i < len; i += 97)
        hdlc_rx_put(sink.rx, in + i, (len - i < 97) ? (int) (len - i) : 97);
    hdlc_rx_get_stats(sink.rx, &st);
    printf("S %lu %lu %lu %lu %lu\n", st.good_frames, st.crc_errors, st.length_errors,
           st.aborts, st.bytes);
    hdlc_rx_free(sink.rx);
    return 0;
}

/* ---- FCS ---------------------------------------------------------------------------- */

static int cmd_crc(void)
{
    int n, i;
    blob_t *frames = read_frames(&n);
    for (i = 0; i < n; i++) {
        uint16_t c16 = crc_itu16_calc(frames[i].data, frames[i].len, 0xFFFF) ^ 0xFFFF;
        uint32_t c32 = crc_itu32_calc(frames[i].data, frames[i].len, 0xFFFFFFFF) ^ 0xFFFFFFFF;
        printf("%u %" PRIu32 "\n", c16, c32);
    }
    return 0;
}

/* ---- T.30 --------------------------------------------------------------------------- */

#define QLEN 64

typedef struct {
    char name;
    t30_state_t *t30;
    uint8_t q[QLEN][256];
    int qlen[QLEN];
    int nq;
    int step_due;               /* a send step finished and must be reported */
} side_t;

static void send_hdlc(void *user_data, const uint8_t msg[], int len)
{
    side_t *s = user_data;
    int i;
    if (len <= 0) {
        s->step_due = 1;
        return;
    }
    printf("%c ", s->name);
    for (i = 0; i < len; i++)
        printf("%02x", msg[i]);
    printf("\n");
    if (s->nq < QLEN && len <= 256) {
        memcpy(s->q[s->nq], msg, len);
        s->qlen[s->nq++] = len;
    }
    s->step_due = 1;
}

static void set_tx_type(void *user_data, int type, int bit_rate, int short_train, int use_hdlc)
{
    side_t *s = user_data;
    (void) bit_rate;
    (void) short_train;
    (void) use_hdlc;
    /* Tones and silences "finish" at once; an image modem sends nothing here. */
    if (type != T30_MODEM_NONE && type != T30_MODEM_DONE && type != T30_MODEM_V21)
        s->step_due = 1;
}

static void set_rx_type(void *user_data, int type, int bit_rate, int short_train, int use_hdlc)
{
    (void) user_data;
    (void) type;
    (void) bit_rate;
    (void) short_train;
    (void) use_hdlc;
}

static int make_tiff(const char *path)
{
    TIFF *t = TIFFOpen(path, "w");
    uint8_t row[216];
    int y;
    if (t == NULL)
        return -1;
    memset(row, 0, sizeof(row));
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 1728);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, 100);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 1);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_CCITTFAX3);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISWHITE);
    TIFFSetField(t, TIFFTAG_FILLORDER, FILLORDER_LSB2MSB);
    TIFFSetField(t, TIFFTAG_XRESOLUTION, 204.0);
    TIFFSetField(t, TIFFTAG_YRESOLUTION, 196.0);
    TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_INCH);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 100);
    TIFFSetField(t, TIFFTAG_PAGENUMBER, 0, 1);
    for (y = 0; y < 100; y++)
        TIFFWriteScanline(t, row, y, 0);
    TIFFClose(t);
    return 0;
}

static void deliver(side_t *from, side_t *to)
{
    int i;
    for (i = 0; i < from->nq; i++)
        t30_hdlc_accept(to->t30, from->q[i], from->qlen[i], 1);
    from->nq = 0;
}

static int cmd_t30(int modems, int res, int sizes, int comp, int ecm, const char *tiff)
{
    side_t a = {.name = 'A'}, c = {.name = 'C'};
    side_t *sides[2] = {&a, &c};
    char rxfile[] = "/tmp/spandsp_link_rxXXXXXX";
    int round, k, fd;
    if (make_tiff(tiff) != 0)
        return 2;
    fd = mkstemp(rxfile);
    if (fd >= 0)
        close(fd);
    a.t30 = t30_init(NULL, 0, set_rx_type, &a, set_tx_type, &a, send_hdlc, &a);
    c.t30 = t30_init(NULL, 1, set_rx_type, &c, set_tx_type, &c, send_hdlc, &c);
    for (k = 0; k < 2; k++) {
        t30_set_supported_modems(sides[k]->t30, modems);
        t30_set_supported_resolutions(sides[k]->t30, res);
        t30_set_supported_image_sizes(sides[k]->t30, sizes);
        t30_set_supported_compressions(sides[k]->t30, comp);
        t30_set_ecm_capability(sides[k]->t30, ecm);
    }
    t30_set_tx_ident(a.t30, "ANSWER 1234");
    t30_set_tx_ident(c.t30, "+1 555 0100");
    t30_set_rx_file(a.t30, rxfile, -1);
    t30_set_tx_file(c.t30, tiff, -1, -1);
    t30_restart(a.t30);
    t30_restart(c.t30);
    for (round = 0; round < 200; round++) {
        for (k = 0; k < 2; k++) {
            side_t *s = sides[k];
            if (s->step_due) {
                s->step_due = 0;
                t30_front_end_status(s->t30, T30_FRONT_END_SEND_STEP_COMPLETE);
            }
        }
        deliver(&a, &c);
        deliver(&c, &a);
        for (k = 0; k < 2; k++)
            t30_timer_update(sides[k]->t30, 160);
    }
    fflush(stdout);
    unlink(rxfile);
    return 0;
}

static void bench_frame(void *user_data, const uint8_t *pkt, int len, int ok)
{
    (void) len;
    (void) ok;
    if (pkt != NULL)
        ((rx_sink_t *) user_data)->frames++;
}

/* ---- timing ------------------------------------------------------------------------- */

/* Best of BENCH_REPEATS runs of ROUNDS passes each, in CPU nanoseconds a pass. */
#define BENCH_REPEATS 15

static double best(double current, double t0, int rounds)
{
    double t = (now_ns() - t0) / rounds;
    return (current < 0 || t < current) ? t : current;
}

static int cmd_bench(int crc32, int rounds)
{
    int n, r, i, k;
    size_t len, total = 0;
    blob_t *frames = read_frames(&n);
    uint8_t *stream, *all;
    double t0, t_tx = -1, t_rx = -1, t_c16 = -1, t_c32 = -1;
    volatile uint32_t sink = 0;
    rx_sink_t rxs = {0};
    for (i = 0; i < n; i++)
        total += frames[i].len;
    /* The FCS of all the frames' octets in one call, as a bulk rate. */
    all = malloc(total + 1);
    for (i = 0, len = 0; i < n; len += frames[i].len, i++)
        memcpy(all + len, frames[i].data, frames[i].len);
    stream = tx_stream(frames, n, crc32, 1, &len);
    for (k = 0; k < BENCH_REPEATS; k++) {
        t0 = now_ns();
        for (r = 0; r < rounds; r++)
            free(tx_stream(frames, n, crc32, 1, &len));
        t_tx = best(t_tx, t0, rounds);
        rxs.frames = 0;
        t0 = now_ns();
        for (r = 0; r < rounds; r++) {
            rxs.rx = hdlc_rx_init(NULL, crc32, 1, 1, bench_frame, &rxs);
            hdlc_rx_set_status_handler(rxs.rx, rx_status, NULL);
            hdlc_rx_put(rxs.rx, stream, (int) len);
            hdlc_rx_free(rxs.rx);
        }
        t_rx = best(t_rx, t0, rounds);
        t0 = now_ns();
        for (r = 0; r < rounds; r++)
            sink += crc_itu16_calc(all, (int) total, 0xFFFF);
        t_c16 = best(t_c16, t0, rounds);
        t0 = now_ns();
        for (r = 0; r < rounds; r++)
            sink += crc_itu32_calc(all, (int) total, 0xFFFFFFFF);
        t_c32 = best(t_c32, t0, rounds);
    }
    free(all);
    printf("%zu %.0f %.0f %.0f %.0f %ld\n", total, t_tx, t_rx, t_c16, t_c32, rxs.frames / rounds);
    return sink == 0x12345678;
}

int main(int argc, char *argv[])
{
    if (argc >= 4 && strcmp(argv[1], "tx") == 0)
        return cmd_tx(atoi(argv[2]), atoi(argv[3]));
    if (argc >= 5 && strcmp(argv[1], "rx") == 0)
        return cmd_rx(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    if (argc >= 2 && strcmp(argv[1], "crc") == 0)
        return cmd_crc();
    if (argc >= 8 && strcmp(argv[1], "t30") == 0)
        return cmd_t30(strtol(argv[2], NULL, 0), strtol(argv[3], NULL, 0),
                       strtol(argv[4], NULL, 0), strtol(argv[5], NULL, 0), atoi(argv[6]),
                       argv[7]);
    if (argc >= 4 && strcmp(argv[1], "bench") == 0)
        return cmd_bench(atoi(argv[2]), atoi(argv[3]));
    fprintf(stderr, "usage: see the comment at the top of spandsp_link.c\n");
    return 2;
}
