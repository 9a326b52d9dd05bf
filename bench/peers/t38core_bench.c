/*
 * The C anchor of the T.38 packet-path benchmark (bench/test_t38_bench.py): SpanDSP's
 * t38_core (Debian libspandsp 0.0.6) for IFP, and the small UDPTL of our own C test peer
 * for the datagrams, run over a packet stream handed in by Python and timed inside C.
 *
 * SpanDSP 0.0.6 has no public UDPTL, so the UDPTL layer is the one of tests/peers/t38peer.c
 * (written in this project, the same code that carries the interop tests' calls): that
 * whole file is #included below with its main() renamed, and only its UDPTL functions
 * (udptl_init, udptl_encode, udptl_receive) and its `opt` settings are used here.
 *
 * Encode (per IFP packet of the stream): t38_core_send_indicator, t38_core_send_data or
 * t38_core_send_data_multi_field -> the tx packet handler -> udptl_encode into a buffer.
 * Decode (per datagram on the wire, repeats included): udptl_receive -> each delivered IFP
 * to t38_core_rx_ifp_packet -> the rx indicator/data handlers (they count).
 *
 * Each pass runs the whole stream on fresh state (two directions: two t38_core contexts,
 * two UDPTL contexts); the set-up is outside the timed part. The result is the best (least)
 * monotonic nanoseconds of `passes` passes.
 *
 * Stream format (all integers big-endian):
 *   item = dir(1) kind(1) type(1) nfields(1) { field_type(1) len(2) data(len) } * nfields
 *   kind 0: indicator `type` (nfields 0); kind 1: data packet of data type `type`.
 * Wire format (datagrams to decode, and what t38b_encode writes back when `out` is given):
 *   datagram = dir(1) count(1) len(2) data(len)
 *   count is the number of copies SpanDSP asked for (t38b_decode feeds each copy).
 *
 * Build: gcc -O2 -shared -fPIC t38core_bench.c $(pkg-config --cflags --libs spandsp) -lm
 */
#define main t38peer_main
#include "../../tests/peers/t38peer.c"
#undef main

#include <stdint.h>
#include <spandsp/version.h>

#define MAX_FIELDS 64

struct side {
    t38_core_state_t *core;
    struct udptl *u;
    int tx_seq;
    /* where the tx handler writes (NULL: a scratch buffer, nothing kept) */
    uint8_t *out;
    int64_t out_cap;
    int64_t *out_len;
    int dir;
    int ifp_only;                   /* no UDPTL: the handler keeps the IFP itself */
    int overflow;
    /* rx counters */
    int64_t indicators;
    int64_t fields;
    int64_t octets;
    int64_t ifps;
    int64_t ifp_errors;
    int64_t missing;
};

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int bench_tx(t38_core_state_t *s, void *user_data, const uint8_t *buf, int len, int count)
{
    struct side *sd = user_data;
    uint8_t scratch[MAX_DATAGRAM + MAX_IFP];
    uint8_t *dst = scratch;
    int64_t at = 0;
    int n;

    (void) s;
    if (len < 1 || len > MAX_IFP)
        return -1;
    if (sd->out != NULL) {
        at = *sd->out_len;
        if (at + 4 + MAX_DATAGRAM + MAX_IFP > sd->out_cap) {
            sd->overflow = 1;
        } else {
            dst = sd->out + at + 4;
        }
    }
    if (sd->ifp_only) {
        memcpy(dst, buf, len);
        n = len;
    } else {
        n = udptl_encode(sd->u, sd->tx_seq, buf, len, dst);
    }
    sd->tx_seq = (sd->tx_seq + 1) & 0xFFFF;
    if (dst != scratch) {
        sd->out[at] = (uint8_t) sd->dir;
        sd->out[at + 1] = (uint8_t) (count < 1 ? 1 : count);
        sd->out[at + 2] = (uint8_t) (n >> 8);
        sd->out[at + 3] = (uint8_t) n;
        *sd->out_len = at + 4 + n;
    }
    return 0;
}

static int bench_rx_indicator(t38_core_state_t *s, void *user_data, int indicator)
{
    struct side *sd = user_data;

    (void) s;
    (void) indicator;
    sd->indicators++;
    return 0;
}

static int bench_rx_data(t38_core_state_t *s, void *user_data, int data_type, int field_type,
                         const uint8_t *buf, int len)
{
    struct side *sd = user_data;

    (void) s;
    (void) data_type;
    (void) field_type;
    (void) buf;
    sd->fields++;
    sd->octets += len;
    return 0;
}

static int bench_rx_missing(t38_core_state_t *s, void *user_data, int rx_seq_no, int expected)
{
    struct side *sd = user_data;

    (void) s;
    (void) rx_seq_no;
    (void) expected;
    sd->missing++;
    return 0;
}

static void bench_deliver(void *user, const uint8_t *ifp, int len, int seq)
{
    struct side *sd = user;

    sd->ifps++;
    if (t38_core_rx_ifp_packet(sd->core, ifp, len, (uint16_t) seq) < 0)
        sd->ifp_errors++;
}

/* SpanDSP's repeat counts, as its t38_terminal sets them: indicators and the ends of
   control and image data go out three times, everything else once. */
static void set_repeats(t38_core_state_t *core)
{
    t38_set_redundancy_control(core, T38_PACKET_CATEGORY_INDICATOR, 3);
    t38_set_redundancy_control(core, T38_PACKET_CATEGORY_CONTROL_DATA, 1);
    t38_set_redundancy_control(core, T38_PACKET_CATEGORY_CONTROL_DATA_END, 3);
    t38_set_redundancy_control(core, T38_PACKET_CATEGORY_IMAGE_DATA, 1);
    t38_set_redundancy_control(core, T38_PACKET_CATEGORY_IMAGE_DATA_END, 3);
}

static int setup(struct side sides[2], int version, int ec, int redundancy, int span,
                 int entries)
{
    int d;

    opt.version = version;
    opt.ec = ec == 2 ? EC_FEC : ec == 1 ? EC_REDUNDANCY : EC_NONE;
    opt.redundancy = redundancy;
    opt.fec_span = span;
    opt.fec_entries = entries;
    memset(sides, 0, 2 * sizeof(struct side));
    for (d = 0; d < 2; d++) {
        sides[d].dir = d;
        sides[d].u = calloc(1, sizeof(struct udptl));
        sides[d].core = t38_core_init(NULL, bench_rx_indicator, bench_rx_data, bench_rx_missing,
                                      &sides[d], bench_tx, &sides[d]);
        if (sides[d].u == NULL || sides[d].core == NULL)
            return -1;
        t38_set_t38_version(sides[d].core, version);
        t38_set_max_datagram_size(sides[d].core, MAX_IFP);
        set_repeats(sides[d].core);
    }
    return 0;
}

/* Fresh per-pass state (not timed). */
static void restart(struct side sides[2], int version)
{
    int d;

    struct fec_record *fec;
    int i;

    for (d = 0; d < 2; d++) {
        /* keep the FEC records allocated on first use: no allocation inside a timed pass
           after the first */
        fec = sides[d].u->fec;
        udptl_init(sides[d].u, version, bench_deliver, &sides[d]);
        sides[d].u->fec = fec;
        for (i = 0; fec != NULL && i < FEC_RECORDS; i++)
            fec[i].seq = -1;
        t38_core_restart(sides[d].core);
        set_repeats(sides[d].core);
        sides[d].tx_seq = 0;
    }
}

static void teardown(struct side sides[2])
{
    int d;

    for (d = 0; d < 2; d++) {
        if (sides[d].core != NULL)
            t38_core_free(sides[d].core);
        if (sides[d].u != NULL) {
            if (sides[d].u->fec != NULL) {
                int i;
                int m;

                for (i = 0; i < FEC_RECORDS; i++)
                    for (m = 0; m < MAX_FEC_ENTRIES; m++)
                        free(sides[d].u->fec[i].data[m]);
                free(sides[d].u->fec);
            }
            free(sides[d].u);
        }
    }
}

static int category(int data_type, int field_type)
{
    int end = field_type == T38_FIELD_HDLC_SIG_END || field_type == T38_FIELD_HDLC_FCS_OK_SIG_END
              || field_type == T38_FIELD_HDLC_FCS_BAD_SIG_END
              || field_type == T38_FIELD_T4_NON_ECM_SIG_END;

    if (data_type == T38_DATA_V21)
        return end ? T38_PACKET_CATEGORY_CONTROL_DATA_END : T38_PACKET_CATEGORY_CONTROL_DATA;
    return end ? T38_PACKET_CATEGORY_IMAGE_DATA_END : T38_PACKET_CATEGORY_IMAGE_DATA;
}

/* Send every item of the stream once; -1 if the stream is malformed. */
static int send_stream(struct side sides[2], const uint8_t *st, int64_t len)
{
    t38_data_field_t fields[MAX_FIELDS];
    int64_t p = 0;
    int dir;
    int kind;
    int type;
    int n;
    int i;

    while (p < len) {
        if (p + 4 > len)
            return -1;
        dir = st[p] & 1;
        kind = st[p + 1];
        type = st[p + 2];
        n = st[p + 3];
        p += 4;
        if (n > MAX_FIELDS)
            return -1;
        for (i = 0; i < n; i++) {
            if (p + 3 > len)
                return -1;
            fields[i].field_type = st[p];
            fields[i].field_len = (st[p + 1] << 8) | st[p + 2];
            fields[i].field = st + p + 3;
            p += 3 + fields[i].field_len;
            if (p > len)
                return -1;
        }
        if (kind == 0) {
            t38_core_send_indicator(sides[dir].core, type);
        } else if (n == 1) {
            t38_core_send_data(sides[dir].core, type, fields[0].field_type, fields[0].field,
                               fields[0].field_len, category(type, fields[0].field_type));
        } else {
            t38_core_send_data_multi_field(sides[dir].core, type, fields, n,
                                           category(type, fields[n - 1].field_type));
        }
    }
    return 0;
}

/* Encode the stream `passes` times; the best pass in *best_ns. With `out`, the first pass
   writes its datagrams there (wire format) and their total length to *out_len. `ec` -1:
   IFP only (t38_core's encoding, no UDPTL; the wire then holds the IFP packets). */
int t38b_encode(const uint8_t *stream, int64_t stream_len, int version, int ec, int redundancy,
                int span, int entries, int passes, uint8_t *out, int64_t out_cap,
                int64_t *out_len, int64_t *best_ns)
{
    struct side sides[2];
    int64_t t0;
    int64_t dt;
    int pass;
    int d;
    int rc = 0;

    *best_ns = INT64_MAX;
    if (out_len != NULL)
        *out_len = 0;
    if (setup(sides, version, ec, redundancy, span, entries) < 0) {
        teardown(sides);
        return -2;
    }
    for (pass = 0; pass < passes && rc == 0; pass++) {
        restart(sides, version);
        for (d = 0; d < 2; d++) {
            sides[d].out = pass == 0 ? out : NULL;
            sides[d].out_cap = out_cap;
            sides[d].out_len = out_len;
            sides[d].ifp_only = ec < 0;
        }
        t0 = now_ns();
        rc = send_stream(sides, stream, stream_len);
        dt = now_ns() - t0;
        if (dt < *best_ns)
            *best_ns = dt;
        if (sides[0].overflow || sides[1].overflow)
            rc = -3;
    }
    teardown(sides);
    return rc;
}

/* Decode the wire stream (every copy of every datagram) `passes` times; the best pass in
   *best_ns. counts[0..5]: IFPs delivered by UDPTL, indicators, data fields, field octets,
   IFPs t38_core rejected, UDPTL malformed + lost (both directions, last pass). With
   `ifp_only` the wire holds IFP packets, handed to t38_core_rx_ifp_packet directly (each
   direction numbered from 0). */
int t38b_decode(const uint8_t *wire, int64_t wire_len, int version, int ifp_only, int passes,
                int64_t *best_ns, int64_t counts[6])
{
    struct side sides[2];
    int64_t t0;
    int64_t dt;
    int64_t p;
    int pass;
    int d;
    int count;
    int n;
    int k;
    int seq[2];

    *best_ns = INT64_MAX;
    memset(counts, 0, 6 * sizeof(int64_t));
    if (setup(sides, version, 0, 0, 1, 1) < 0) {
        teardown(sides);
        return -2;
    }
    for (pass = 0; pass < passes; pass++) {
        restart(sides, version);
        for (d = 0; d < 2; d++) {
            sides[d].indicators = sides[d].fields = sides[d].octets = 0;
            sides[d].ifps = sides[d].ifp_errors = sides[d].missing = 0;
        }
        seq[0] = seq[1] = 0;
        t0 = now_ns();
        for (p = 0; p + 4 <= wire_len; p += 4 + n) {
            d = wire[p] & 1;
            count = wire[p + 1];
            n = (wire[p + 2] << 8) | wire[p + 3];
            if (p + 4 + n > wire_len) {
                teardown(sides);
                return -1;
            }
            if (ifp_only) {
                bench_deliver(&sides[d], wire + p + 4, n, seq[d]);
                seq[d] = (seq[d] + 1) & 0xFFFF;
                continue;
            }
            for (k = 0; k < count; k++)
                udptl_receive(sides[d].u, wire + p + 4, n, 1.0);
        }
        dt = now_ns() - t0;
        if (dt < *best_ns)
            *best_ns = dt;
    }
    for (d = 0; d < 2; d++) {
        counts[0] += sides[d].ifps;
        counts[1] += sides[d].indicators;
        counts[2] += sides[d].fields;
        counts[3] += sides[d].octets;
        counts[4] += sides[d].ifp_errors;
        counts[5] += sides[d].u->malformed + sides[d].u->lost;
    }
    teardown(sides);
    return 0;
}

/* SpanDSP's version string, for the report. */
const char *t38b_spandsp_version(void)
{
    return SPANDSP_RELEASE_DATETIME_STRING;
}
