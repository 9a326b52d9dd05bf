/*
 * t38peer - a T.38 fax endpoint over UDPTL/UDP, built on libspandsp.
 *
 * Runs a SpanDSP t38_terminal (sending a TIFF-F file or receiving into one), or with
 * --gateway a SpanDSP t38_gateway joined in-process, by 8000 samples/s audio in blocks
 * of 160 samples, to a SpanDSP audio fax terminal (fax.h): a G3 fax machine behind a
 * T.38 gateway.  IFP packets travel in UDPTL (ITU-T T.38 clause 9 / Annex, aligned PER)
 * over a real UDP socket; the UDPTL encoder and decoder are this file's own.
 *
 * With --pairs N it runs N t38_terminal sender/receiver pairs in one process over
 * 127.0.0.1 UDP (one poll loop) and reports the CPU time they took.
 *
 * Stdout protocol (one line each): "PORT n" (not with --pairs), "READY", and at exit
 * "RESULT <json>".  Logs go to stderr.  See README.md.
 */
#define _GNU_SOURCE
#define SPANDSP_EXPOSE_INTERNAL_STRUCTURES
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <spandsp.h>

#include "peer_common.h"

#define SAMPLE_RATE 8000
#define BLOCK 160                 /* samples per tick: 20 ms */
#define MAX_IFP 1024              /* longest IFP packet we carry or accept, bytes */
#define MAX_DATAGRAM 1400         /* longest UDPTL datagram we send, bytes */
#define HIST 64                   /* UDPTL window: packets remembered each way (power of 2) */
#define MAX_SECONDARY 32          /* redundancy depth accepted from the peer */
#define MAX_FEC_ENTRIES 16        /* fec-data entries accepted from the peer */
#define MAX_FEC_SPAN 32           /* fec-npackets accepted from the peer */
#define FEC_RECORDS 16            /* FEC sets of recent packets kept for repairs */
#define REORDER_PACKETS 4         /* a hole is given up once this many later packets wait */
#define HOLE_WAIT_MS 60.0         /* ... or once it is this old (wall clock) */
#define SEQ_JUMP 1000             /* a sequence number this far ahead is a restart */
#define MAX_PAIRS 500

enum ec_mode { EC_NONE, EC_REDUNDANCY, EC_FEC };

/* ---- options ------------------------------------------------------------------------ */

static struct {
    const char *send_file;
    const char *recv_file;
    int calling;
    int gateway;
    const char *local;
    const char *remote;
    int ecm;
    int version;
    enum ec_mode ec;
    int redundancy;
    int fec_span;
    int fec_entries;
    int rate_management;
    int fill_bit_removal;
    int max_bitrate;
    int compressions;
    int resolutions;
    const char *ident;
    double speed;
    double timeout;
    double linger;
    int log_level;
    const char *pcap;
    double loss;
    double reorder;
    unsigned int seed;
    int pairs;
} opt = {
    .ecm = 1,
    .version = 0,
    .ec = EC_REDUNDANCY,
    .redundancy = 3,
    .fec_span = 3,
    .fec_entries = 3,
    .rate_management = 2,
    .fill_bit_removal = 0,
    .max_bitrate = 14400,
    .compressions = T30_SUPPORT_T4_1D_COMPRESSION | T30_SUPPORT_T4_2D_COMPRESSION
                    | T30_SUPPORT_T6_COMPRESSION,
    .resolutions = T30_SUPPORT_STANDARD_RESOLUTION | T30_SUPPORT_FINE_RESOLUTION
                   | T30_SUPPORT_SUPERFINE_RESOLUTION | T30_SUPPORT_R8_RESOLUTION,
    .ident = "T38PEER",
    .speed = 1.0,
    .timeout = 300.0,
    .linger = 0.5,
    .log_level = -1,
    .seed = 1234567,
};

static volatile sig_atomic_t got_signal;
static double start_wall;

static void die(const char *what)
{
    fprintf(stderr, "t38peer: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (p == NULL)
        die("calloc");
    return p;
}

/* A small deterministic generator for --loss and --reorder (xorshift32). */
static uint32_t rng_state;

static double rng_unit(void)
{
    uint32_t x = rng_state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return (double) x / 4294967296.0;
}

/* ---- IFP structure (only its length, to trim FEC-repaired packets) --------------------

   IFPPacket ::= SEQUENCE { type-of-msg, data-field SEQUENCE (SIZE(1..MAX)) OF
   SEQUENCE { field-type, field-data OCTET STRING (SIZE(1..65535)) OPTIONAL } OPTIONAL },
   aligned PER.  First octet: bit 7 data-field present, bit 6 indicator (0) or data (1),
   bit 5 extension (then one more octet).  data-field: a length determinant (the number of
   fields), then per field one octet (bit 7 field-data present; T.38 version >= 1: bit 6
   extension, then one more octet) and, if present, a 2-octet length - 1 and the data. */
static int ifp_length(const uint8_t *buf, int len, int version)
{
    int p = 0;
    int present;
    int fields;
    int i;
    int f;
    int n;

    if (len < 1)
        return -1;
    present = buf[0] & 0x80;
    p = (buf[0] & 0x20) ? 2 : 1;
    if (p > len)
        return -1;
    if (!present)
        return p;
    if (p >= len)
        return -1;
    if (!(buf[p] & 0x80)) {
        fields = buf[p++];
    } else if (!(buf[p] & 0x40)) {
        if (p + 2 > len)
            return -1;
        fields = ((buf[p] & 0x3F) << 8) | buf[p + 1];
        p += 2;
    } else {
        return -1;      /* fragmented: far beyond MAX_IFP */
    }
    for (i = 0; i < fields; i++) {
        if (p >= len)
            return -1;
        f = buf[p++];
        if (version > 0 && (f & 0x40))
            p++;
        if (f & 0x80) {
            if (p + 2 > len)
                return -1;
            n = ((buf[p] << 8) | buf[p + 1]) + 1;
            p += 2 + n;
        }
        if (p > len)
            return -1;
    }
    return p;
}

/* ---- UDPTL ------------------------------------------------------------------------------

   UDPTLPacket ::= SEQUENCE {
       seq-number          INTEGER (0..65535),
       primary-ifp-packet  TYPE-IDENTIFIER.&Type(IFPPacket),
       error-recovery      CHOICE {
           secondary-ifp-packets  SEQUENCE OF TYPE-IDENTIFIER.&Type(IFPPacket),
           fec-info               SEQUENCE { fec-npackets INTEGER,
                                             fec-data SEQUENCE OF OCTET STRING } } }

   Aligned PER: seq-number is 2 octets, big-endian.  An open type is a length determinant
   and the octets.  The CHOICE index is one bit, then padding to the octet: 0x00 for
   secondary-ifp-packets (then a count and that many open types, newest first: seq-1,
   seq-2, ...), 0x80 for fec-info (then fec-npackets as a length and minimal two's
   complement octets, a count, and that many length-prefixed octet strings).

   Length determinant (unconstrained): 0xxxxxxx for 0..127, 10xxxxxx xxxxxxxx for
   128..16383; 11xxxxxx (fragments) is never needed here and is rejected.

   Parity FEC, as SpanDSP and Asterisk do it: fec-npackets is the span S, the number of
   entries E; entry m of packet n is the XOR (zero-padded to the longest) of packets
   n+m-S*E, n+m-S*E+E, ..., n+m-E.  While fewer than S*E packets exist the sender winds
   up with E = n / S (and S = 0 while n < S). */

struct fec_record {
    int seq;            /* -1: unused */
    int span;
    int entries;
    int len[MAX_FEC_ENTRIES];
    uint8_t *data[MAX_FEC_ENTRIES];
};

enum slot_state { SLOT_EMPTY, SLOT_PENDING, SLOT_DELIVERED };

struct udptl {
    /* transmit */
    int tx_count;                       /* IFP packets encoded so far */
    int tx_len[HIST];
    uint8_t tx_buf[HIST][MAX_IFP];
    /* receive */
    int rx_next;                        /* next sequence number to deliver; -1 before any */
    int rx_high;                        /* highest sequence number received */
    int slot_seq[HIST];
    int slot_state[HIST];
    int slot_recovered[HIST];
    int slot_len[HIST];
    uint8_t slot_buf[HIST][MAX_IFP];
    double hole_since;                  /* wall time a hole at rx_next was first seen; 0 none */
    struct fec_record *fec;             /* FEC_RECORDS of them, allocated on first use */
    int fec_next;
    int version;                        /* T.38 version: IFP field-type encoding */
    /* counters */
    long sent;          /* datagrams put on the wire */
    long dropped;       /* datagrams not sent because of --loss */
    long received;      /* well-formed datagrams received */
    long recovered;     /* IFP packets delivered from redundancy or FEC (their own
                           datagram lost, or not there yet) */
    long lost;          /* IFP packets given up */
    long malformed;     /* datagrams that were not valid UDPTL */
    long duplicates;    /* datagrams for packets already delivered or waiting */
    long late;          /* datagrams for packets already given up */
    long reordered;     /* datagrams that came after a later-numbered one */
    long foreign;       /* datagrams from an address other than the peer's */
    long ifp_errors;    /* IFP packets SpanDSP's t38_core rejected */
    /* delivery */
    void (*deliver)(void *user, const uint8_t *ifp, int len, int seq);
    void *user;
};

static int seq_diff(int a, int b)
{
    /* a - b in the 16-bit sequence space, in -32768..32767 */
    int d = (a - b) & 0xFFFF;

    return d >= 0x8000 ? d - 0x10000 : d;
}

static void put_length(uint8_t *buf, int *len, int value)
{
    if (value < 0x80) {
        buf[(*len)++] = (uint8_t) value;
    } else {
        buf[(*len)++] = (uint8_t) (0x80 | (value >> 8));
        buf[(*len)++] = (uint8_t) (value & 0xFF);
    }
}

static void put_open(uint8_t *buf, int *len, const uint8_t *data, int n)
{
    put_length(buf, len, n);
    memcpy(buf + *len, data, n);
    *len += n;
}

/* Encode IFP packet `ifp` as UDPTL packet `seq` into out (at least MAX_DATAGRAM + MAX_IFP
   bytes); return the length. */
static int udptl_encode(struct udptl *u, int seq, const uint8_t *ifp, int ifp_len, uint8_t *out)
{
    uint8_t fec[MAX_IFP];
    int slot = seq & (HIST - 1);
    int len = 0;
    int before;
    int count_at;
    int n;
    int i;
    int j;
    int m;
    int k;
    int s;
    int span;
    int entries;
    int high;
    int have;

    u->tx_len[slot] = ifp_len;
    memcpy(u->tx_buf[slot], ifp, ifp_len);
    have = u->tx_count;             /* packets before this one */
    u->tx_count++;

    out[len++] = (uint8_t) (seq >> 8);
    out[len++] = (uint8_t) seq;
    put_open(out, &len, ifp, ifp_len);
    switch (opt.ec) {
    case EC_NONE:
    case EC_REDUNDANCY:
        out[len++] = 0x00;
        n = opt.ec == EC_NONE ? 0 : opt.redundancy;
        if (n > have)
            n = have;
        if (n > HIST - 1)
            n = HIST - 1;
        count_at = len;
        out[len++] = (uint8_t) n;       /* n < 128: one octet */
        for (i = 1; i <= n; i++) {
            j = (seq - i) & (HIST - 1);
            before = len;
            put_open(out, &len, u->tx_buf[j], u->tx_len[j]);
            if (len > MAX_DATAGRAM) {
                len = before;
                out[count_at] = (uint8_t) (i - 1);
                break;
            }
        }
        break;
    case EC_FEC:
        span = opt.fec_span;
        entries = opt.fec_entries;
        if (have < span * entries) {
            entries = have / span;
            if (have < span)
                span = 0;
        }
        out[len++] = 0x80;
        out[len++] = 1;                 /* fec-npackets: one octet, span < 128 */
        out[len++] = (uint8_t) span;
        count_at = len;
        out[len++] = (uint8_t) entries;
        for (m = 0; m < entries; m++) {
            high = 0;
            for (k = 0; k < span; k++) {
                s = (seq + m - span * entries + k * entries) & (HIST - 1);
                for (j = 0; j < u->tx_len[s]; j++)
                    fec[j] = (j < high ? fec[j] : 0) ^ u->tx_buf[s][j];
                if (u->tx_len[s] > high)
                    high = u->tx_len[s];
            }
            before = len;
            put_open(out, &len, fec, high);
            if (len > MAX_DATAGRAM) {
                len = before;
                out[count_at] = (uint8_t) m;
                break;
            }
        }
        break;
    }
    return len;
}

/* Read a length determinant; -1 if truncated or fragmented. */
static int get_length(const uint8_t *buf, int len, int *p)
{
    int v;

    if (*p >= len)
        return -1;
    if (!(buf[*p] & 0x80))
        return buf[(*p)++];
    if (buf[*p] & 0x40)
        return -1;
    if (*p + 2 > len)
        return -1;
    v = ((buf[*p] & 0x3F) << 8) | buf[*p + 1];
    *p += 2;
    return v;
}

static int get_open(const uint8_t *buf, int len, int *p, const uint8_t **data, int max)
{
    int n = get_length(buf, len, p);

    if (n < 0 || n > max || *p + n > len)
        return -1;
    *data = buf + *p;
    *p += n;
    return n;
}

static struct {
    int seq;
    const uint8_t *primary;
    int primary_len;
    int fec;                    /* error recovery is FEC */
    int n;                      /* secondaries, or FEC entries */
    const uint8_t *item[MAX_SECONDARY];
    int item_len[MAX_SECONDARY];
    int span;
} pkt;

/* Parse one datagram into pkt; 0 if it is well-formed UDPTL, -1 if not. */
static int udptl_parse(const uint8_t *buf, int len)
{
    int p = 2;
    int i;
    int n;
    int choice;
    int vlen;

    if (len < 2)
        return -1;
    pkt.seq = (buf[0] << 8) | buf[1];
    pkt.primary_len = get_open(buf, len, &p, &pkt.primary, MAX_IFP);
    if (pkt.primary_len < 1)
        return -1;
    if (p >= len)
        return -1;
    choice = buf[p++];
    if (choice != 0x00 && choice != 0x80)
        return -1;              /* the index is one bit; the padding bits must be zero */
    pkt.fec = choice == 0x80;
    pkt.span = 0;
    if (pkt.fec) {
        vlen = get_length(buf, len, &p);
        if (vlen < 1 || vlen > 4 || p + vlen > len)
            return -1;
        if (buf[p] & 0x80)
            return -1;          /* a negative span */
        for (i = 0; i < vlen; i++) {
            if (pkt.span > MAX_FEC_SPAN)
                return -1;
            pkt.span = (pkt.span << 8) | buf[p++];
        }
        if (pkt.span > MAX_FEC_SPAN)
            return -1;
    }
    n = get_length(buf, len, &p);
    if (n < 0 || n > (pkt.fec ? MAX_FEC_ENTRIES : MAX_SECONDARY))
        return -1;
    pkt.n = n;
    for (i = 0; i < n; i++) {
        pkt.item_len[i] = get_open(buf, len, &p, &pkt.item[i], MAX_IFP);
        if (pkt.item_len[i] < (pkt.fec ? 0 : 1))
            return -1;
    }
    if (p != len)
        return -1;              /* trailing octets */
    return 0;
}

static void udptl_init(struct udptl *u, int version,
                       void (*deliver)(void *, const uint8_t *, int, int), void *user)
{
    int i;

    memset(u, 0, sizeof(*u));
    u->rx_next = -1;
    u->version = version;
    u->deliver = deliver;
    u->user = user;
    for (i = 0; i < HIST; i++)
        u->slot_seq[i] = -1;
}

/* Is packet seq held (waiting or delivered) in the window? */
static int slot_has(const struct udptl *u, int seq)
{
    int i = seq & (HIST - 1);

    return u->slot_seq[i] == seq && u->slot_state[i] != SLOT_EMPTY;
}

/* Is packet seq waiting for delivery? */
static int slot_pending(const struct udptl *u, int seq)
{
    int i = seq & (HIST - 1);

    return u->slot_seq[i] == seq && u->slot_state[i] == SLOT_PENDING;
}

static void slot_store(struct udptl *u, int seq, const uint8_t *data, int len, int recovered)
{
    int i = seq & (HIST - 1);

    u->slot_seq[i] = seq;
    u->slot_state[i] = SLOT_PENDING;
    u->slot_recovered[i] = recovered;
    u->slot_len[i] = len;
    memcpy(u->slot_buf[i], data, len);
}

/* Deliver what is in order from rx_next on. */
static void udptl_flush(struct udptl *u)
{
    int i;

    for (;;) {
        i = u->rx_next & (HIST - 1);
        if (u->slot_seq[i] != u->rx_next || u->slot_state[i] != SLOT_PENDING)
            break;
        u->slot_state[i] = SLOT_DELIVERED;
        if (u->slot_recovered[i])
            u->recovered++;
        u->deliver(u->user, u->slot_buf[i], u->slot_len[i], u->rx_next);
        u->rx_next = (u->rx_next + 1) & 0xFFFF;
    }
}

/* Give up the hole at rx_next: skip to the next packet that is waiting. */
static void udptl_skip_hole(struct udptl *u)
{
    int k;

    for (k = 0; k < HIST; k++) {
        if (slot_pending(u, u->rx_next))
            break;
        u->lost++;
        u->rx_next = (u->rx_next + 1) & 0xFFFF;
    }
    u->hole_since = 0.0;
    udptl_flush(u);
}

static int waiting_after_hole(const struct udptl *u)
{
    int k;
    int n = 0;

    for (k = 1; k < HIST; k++) {
        if (slot_pending(u, (u->rx_next + k) & 0xFFFF))
            n++;
    }
    return n;
}

/* Rebuild missing packets from the FEC sets kept; repeat while it helps. */
static void udptl_repair(struct udptl *u)
{
    uint8_t buf[MAX_IFP];
    struct fec_record *r;
    int progress = 1;
    int i;
    int m;
    int k;
    int j;
    int s;
    int missing;
    int unknown;
    int n;

    while (progress) {
        progress = 0;
        for (i = 0; i < FEC_RECORDS; i++) {
            r = &u->fec[i];
            if (r->seq < 0 || r->span == 0)
                continue;
            for (m = 0; m < r->entries; m++) {
                missing = -1;
                unknown = 0;
                for (k = 0; k < r->span; k++) {
                    s = (r->seq + m - r->span * r->entries + k * r->entries) & 0xFFFF;
                    if (slot_has(u, s))
                        continue;
                    if (seq_diff(s, u->rx_next) < 0) {
                        unknown = 2;        /* given up or out of the window: no use */
                        break;
                    }
                    unknown++;
                    missing = s;
                }
                if (unknown != 1)
                    continue;
                memcpy(buf, r->data[m], r->len[m]);
                for (k = 0; k < r->span; k++) {
                    s = (r->seq + m - r->span * r->entries + k * r->entries) & 0xFFFF;
                    if (s == missing)
                        continue;
                    j = s & (HIST - 1);
                    for (n = 0; n < u->slot_len[j] && n < r->len[m]; n++)
                        buf[n] ^= u->slot_buf[j][n];
                }
                /* The XOR is as long as the longest packet of the set: trim the rebuilt one
                   to the length its own structure gives. */
                n = ifp_length(buf, r->len[m], u->version);
                if (n < 1) {
                    u->malformed++;
                    continue;
                }
                slot_store(u, missing, buf, n, 1);
                progress = 1;
            }
        }
    }
}

static void udptl_keep_fec(struct udptl *u)
{
    struct fec_record *r;
    int i;

    if (u->fec == NULL) {
        u->fec = xcalloc(FEC_RECORDS, sizeof(struct fec_record));
        for (i = 0; i < FEC_RECORDS; i++)
            u->fec[i].seq = -1;
    }
    if (pkt.span * pkt.n > HIST / 2)
        return;                     /* reaches further back than we remember */
    r = &u->fec[u->fec_next];
    u->fec_next = (u->fec_next + 1) % FEC_RECORDS;
    r->seq = pkt.seq;
    r->span = pkt.span;
    r->entries = pkt.n;
    for (i = 0; i < pkt.n; i++) {
        if (r->data[i] == NULL)
            r->data[i] = xcalloc(1, MAX_IFP);
        r->len[i] = pkt.item_len[i];
        memcpy(r->data[i], pkt.item[i], pkt.item_len[i]);
    }
}

/* One datagram from the peer. */
static void udptl_receive(struct udptl *u, const uint8_t *buf, int len, double now)
{
    int d;
    int i;
    int s;

    if (udptl_parse(buf, len) < 0) {
        u->malformed++;
        return;
    }
    u->received++;
    if (u->rx_next < 0) {
        /* The first packet: earlier ones it carries as redundancy are wanted too. */
        d = pkt.fec ? 0 : (pkt.n < pkt.seq ? pkt.n : pkt.seq);
        u->rx_next = (pkt.seq - d) & 0xFFFF;
        u->rx_high = pkt.seq;
    }
    if (seq_diff(pkt.seq, u->rx_high) < 0)
        u->reordered++;
    else
        u->rx_high = pkt.seq;
    d = seq_diff(pkt.seq, u->rx_next);
    if (d >= SEQ_JUMP || d < -SEQ_JUMP) {
        /* The sequence restarted: hand over what waits, and follow the new numbers. */
        while (waiting_after_hole(u) > 0)
            udptl_skip_hole(u);
        u->rx_next = pkt.seq;
        u->rx_high = pkt.seq;
        for (i = 0; i < HIST; i++)
            u->slot_state[i] = SLOT_EMPTY;
        for (i = 0; u->fec != NULL && i < FEC_RECORDS; i++)
            u->fec[i].seq = -1;
        d = 0;
    } else if (d < 0) {
        /* Already delivered (a duplicate) or already given up (late). */
        if (slot_has(u, pkt.seq))
            u->duplicates++;
        else
            u->late++;
        return;
    }
    while (d >= HIST / 2) {
        /* Too far ahead for the window: give up the oldest holes, one by one. */
        if (!slot_pending(u, u->rx_next)) {
            u->lost++;
            u->rx_next = (u->rx_next + 1) & 0xFFFF;
        }
        udptl_flush(u);
        d = seq_diff(pkt.seq, u->rx_next);
    }
    if (slot_has(u, pkt.seq)) {
        u->duplicates++;
        return;
    }
    slot_store(u, pkt.seq, pkt.primary, pkt.primary_len, 0);
    if (!pkt.fec) {
        for (i = 0; i < pkt.n; i++) {
            s = (pkt.seq - 1 - i) & 0xFFFF;
            if (seq_diff(s, u->rx_next) >= 0 && !slot_has(u, s))
                slot_store(u, s, pkt.item[i], pkt.item_len[i], 1);
        }
    } else {
        udptl_keep_fec(u);
        udptl_repair(u);
    }
    udptl_flush(u);
    if (waiting_after_hole(u) > 0 && u->hole_since == 0.0)
        u->hole_since = now;
    while (waiting_after_hole(u) >= REORDER_PACKETS)
        udptl_skip_hole(u);
    if (waiting_after_hole(u) == 0)
        u->hole_since = 0.0;
}

/* Give up a hole that has waited too long (call every tick). */
static void udptl_expire(struct udptl *u, double now)
{
    if (u->hole_since != 0.0 && (now - u->hole_since) * 1000.0 > HOLE_WAIT_MS) {
        while (waiting_after_hole(u) > 0)
            udptl_skip_hole(u);
    }
}

/* ---- pcap ------------------------------------------------------------------------------ */

static FILE *pcap_file;

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t) (v >> 8);
    p[1] = (uint8_t) v;
}

static unsigned csum_add(unsigned sum, const uint8_t *p, int len)
{
    int i;

    for (i = 0; i + 1 < len; i += 2)
        sum += (p[i] << 8) | p[i + 1];
    if (len & 1)
        sum += p[len - 1] << 8;
    return sum;
}

static unsigned csum_fold(unsigned sum)
{
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return ~sum & 0xFFFF;
}

static void pcap_open(const char *path)
{
    uint32_t hdr[6] = {0xA1B2C3D4, 0x00040002, 0, 0, 65535, 228 /* LINKTYPE_IPV4 */};

    pcap_file = fopen(path, "wb");
    if (pcap_file == NULL)
        die(path);
    fwrite(hdr, sizeof(hdr), 1, pcap_file);
}

/* Record one datagram as an IPv4/UDP packet with correct checksums. */
static void pcap_write(const struct sockaddr_in *src, const struct sockaddr_in *dst,
                       const uint8_t *data, int len)
{
    static uint16_t ip_id;
    uint8_t h[28];
    uint8_t pseudo[12];
    uint32_t rec[4];
    struct timeval tv;
    unsigned sum;

    if (pcap_file == NULL)
        return;
    memset(h, 0, sizeof(h));
    h[0] = 0x45;
    put16(h + 2, 28 + len);
    put16(h + 4, ip_id++);
    put16(h + 6, 0x4000);       /* don't fragment */
    h[8] = 64;
    h[9] = IPPROTO_UDP;
    memcpy(h + 12, &src->sin_addr, 4);
    memcpy(h + 16, &dst->sin_addr, 4);
    put16(h + 10, csum_fold(csum_add(0, h, 20)));
    memcpy(h + 20, &src->sin_port, 2);
    memcpy(h + 22, &dst->sin_port, 2);
    put16(h + 24, 8 + len);
    memcpy(pseudo, h + 12, 8);
    pseudo[8] = 0;
    pseudo[9] = IPPROTO_UDP;
    put16(pseudo + 10, 8 + len);
    sum = csum_add(csum_add(0, pseudo, 12), h + 20, 8);
    /* data follows an even-length header, so it can be summed on its own */
    sum = csum_fold(csum_add(sum, data, len));
    put16(h + 26, sum == 0 ? 0xFFFF : sum);
    gettimeofday(&tv, NULL);
    rec[0] = (uint32_t) tv.tv_sec;
    rec[1] = (uint32_t) tv.tv_usec;
    rec[2] = rec[3] = 28 + len;
    fwrite(rec, sizeof(rec), 1, pcap_file);
    fwrite(h, 28, 1, pcap_file);
    fwrite(data, len, 1, pcap_file);
}

/* ---- endpoints ------------------------------------------------------------------------- */

struct endpoint {
    char tag[24];
    int fd;
    struct sockaddr_in local;
    struct sockaddr_in remote;
    int have_remote;
    struct udptl u;
    t38_terminal_state_t *term;     /* terminal mode */
    t38_gateway_state_t *gw;        /* gateway mode ... */
    fax_state_t *fax;               /* ... and the audio fax machine behind it */
    t38_core_state_t *core;
    t30_state_t *t30;
    int sends;
    int calls;
    int tx_seq;                     /* next UDPTL sequence number to send */
    int started;                    /* its clock runs */
    int64_t samples;                /* its simulated time */
    int done;
    int completion;
    int64_t done_at;
    double done_wall;
    t30_stats_t stats;
    char remote_ident[64];
    int phase_b;
    int phase_d;
    uint8_t held[MAX_DATAGRAM + MAX_IFP];   /* a datagram held back by --reorder ... */
    int held_len;
    int held_count;                         /* ... the copies of it to send */
    int held_ticks;                         /* ... and for how many ticks it has waited */
};

static void send_datagram(struct endpoint *ep, const uint8_t *buf, int len)
{
    if (opt.loss > 0.0 && rng_unit() < opt.loss) {
        ep->u.dropped++;
        return;
    }
    if (sendto(ep->fd, buf, len, 0, (const struct sockaddr *) &ep->remote, sizeof(ep->remote)) < 0)
        fprintf(stderr, "t38peer: %s: sendto: %s\n", ep->tag, strerror(errno));
    ep->u.sent++;
    pcap_write(&ep->local, &ep->remote, buf, len);
}

static void release_held(struct endpoint *ep)
{
    int i;

    for (i = 0; i < ep->held_count; i++)
        send_datagram(ep, ep->held, ep->held_len);
    ep->held_count = 0;
    ep->held_ticks = 0;
}

static int tx_packet_handler(t38_core_state_t *s, void *user_data, const uint8_t *buf, int len,
                             int count)
{
    struct endpoint *ep = user_data;
    uint8_t out[MAX_DATAGRAM + MAX_IFP];
    int n;
    int i;
    int seq;

    (void) s;
    if (len < 1 || len > MAX_IFP) {
        fprintf(stderr, "t38peer: %s: IFP packet of %d bytes not sent\n", ep->tag, len);
        return -1;
    }
    seq = ep->tx_seq;
    ep->tx_seq = (ep->tx_seq + 1) & 0xFFFF;
    if (!ep->have_remote)
        return 0;
    n = udptl_encode(&ep->u, seq, buf, len, out);
    if (count < 1)
        count = 1;
    if (opt.reorder > 0.0 && ep->held_count == 0 && rng_unit() < opt.reorder) {
        /* --reorder: this packet goes out after the next one. */
        memcpy(ep->held, out, n);
        ep->held_len = n;
        ep->held_count = count;
        return 0;
    }
    /* SpanDSP asks for `count` copies of some packets (indicators, ends of data): they
       carry one sequence number, and the far end drops all but one. */
    for (i = 0; i < count; i++)
        send_datagram(ep, out, n);
    release_held(ep);
    return 0;
}

static void deliver_ifp(void *user, const uint8_t *ifp, int len, int seq)
{
    struct endpoint *ep = user;

    if (t38_core_rx_ifp_packet(ep->core, ifp, len, (uint16_t) seq) < 0)
        ep->u.ifp_errors++;
}

static int phase_b_handler(t30_state_t *s, void *user_data, int result)
{
    struct endpoint *ep = user_data;

    (void) s;
    ep->phase_b++;
    if (opt.log_level > 0)
        fprintf(stderr, "%10.3f %s: phase B (0x%X) %s\n", (double) ep->samples / SAMPLE_RATE,
                ep->tag, result, t30_frametype(result));
    return T30_ERR_OK;
}

static int phase_d_handler(t30_state_t *s, void *user_data, int result)
{
    struct endpoint *ep = user_data;

    (void) s;
    ep->phase_d++;
    if (opt.log_level > 0)
        fprintf(stderr, "%10.3f %s: phase D (0x%X) %s\n", (double) ep->samples / SAMPLE_RATE,
                ep->tag, result, t30_frametype(result));
    return T30_ERR_OK;
}

static void phase_e_handler(t30_state_t *s, void *user_data, int completion_code)
{
    struct endpoint *ep = user_data;
    const char *id;

    ep->done = 1;
    ep->done_at = ep->samples;
    ep->done_wall = peer_wall_now() - start_wall;
    ep->completion = completion_code;
    t30_get_transfer_statistics(s, &ep->stats);
    id = t30_get_rx_ident(s);
    snprintf(ep->remote_ident, sizeof(ep->remote_ident), "%s", id ? id : "");
    if (opt.log_level > 0)
        fprintf(stderr, "%10.3f %s: phase E %d %s\n", (double) ep->samples / SAMPLE_RATE,
                ep->tag, completion_code, t30_completion_code_to_str(completion_code));
}

static int supported_modems(void)
{
    if (opt.max_bitrate >= 12000)
        return T30_SUPPORT_V27TER | T30_SUPPORT_V29 | T30_SUPPORT_V17;
    if (opt.max_bitrate >= 7200)
        return T30_SUPPORT_V27TER | T30_SUPPORT_V29;
    return T30_SUPPORT_V27TER;
}

static void setup_t30(struct endpoint *ep, const char *file)
{
    peer_setup_t30(ep->t30, ep->sends, file, opt.ident, opt.ecm, opt.resolutions,
                   opt.compressions, opt.log_level, ep->tag);
    t30_set_phase_b_handler(ep->t30, phase_b_handler, ep);
    t30_set_phase_d_handler(ep->t30, phase_d_handler, ep);
    t30_set_phase_e_handler(ep->t30, phase_e_handler, ep);
}

static void setup_core(struct endpoint *ep)
{
    t38_set_t38_version(ep->core, opt.version);
    t38_set_data_rate_management_method(ep->core, opt.rate_management);
    t38_set_fill_bit_removal(ep->core, opt.fill_bit_removal);
    t38_set_fastest_image_data_rate(ep->core, opt.max_bitrate);
    t38_set_max_datagram_size(ep->core, MAX_IFP);
    peer_set_log(t38_core_get_logging_state(ep->core), opt.log_level, ep->tag);
}

static void init_terminal_endpoint(struct endpoint *ep, int calls, int sends, const char *file)
{
    int iaf;

    ep->calls = calls;
    ep->sends = sends;
    ep->completion = -1;
    ep->term = t38_terminal_init(NULL, calls, tx_packet_handler, ep);
    if (ep->term == NULL) {
        fprintf(stderr, "t38peer: t38_terminal_init failed\n");
        exit(2);
    }
    ep->t30 = t38_terminal_get_t30_state(ep->term);
    ep->core = t38_terminal_get_t38_core_state(ep->term);
    setup_core(ep);
    setup_t30(ep, file);
    t30_set_supported_modems(ep->t30, supported_modems() | T30_SUPPORT_IAF);
    t38_terminal_set_fill_bit_removal(ep->term, opt.fill_bit_removal);
    if (opt.rate_management == 1) {
        /* Local TCF: the sender puts no TCF on the T.38 link (SpanDSP's T.30 skips it). */
        iaf = ep->t30->iaf | T30_IAF_MODE_NO_TCF;
        t30_set_iaf_mode(ep->t30, iaf);
    }
    peer_set_log(t38_terminal_get_logging_state(ep->term), opt.log_level, ep->tag);
}

static void init_gateway_endpoint(struct endpoint *ep, int calls, int sends, const char *file)
{
    ep->calls = calls;
    ep->sends = sends;
    ep->completion = -1;
    ep->gw = t38_gateway_init(NULL, tx_packet_handler, ep);
    ep->fax = fax_init(NULL, calls);
    if (ep->gw == NULL || ep->fax == NULL) {
        fprintf(stderr, "t38peer: t38_gateway_init/fax_init failed\n");
        exit(2);
    }
    ep->core = t38_gateway_get_t38_core_state(ep->gw);
    setup_core(ep);
    t38_gateway_set_transmit_on_idle(ep->gw, 1);
    t38_gateway_set_ecm_capability(ep->gw, opt.ecm);
    t38_gateway_set_supported_modems(ep->gw, supported_modems());
    t38_gateway_set_fill_bit_removal(ep->gw, opt.fill_bit_removal);
    peer_set_log(t38_gateway_get_logging_state(ep->gw), opt.log_level, "GW");
    ep->t30 = fax_get_t30_state(ep->fax);
    setup_t30(ep, file);
    t30_set_supported_modems(ep->t30, supported_modems());
    fax_set_transmit_on_idle(ep->fax, 1);
    peer_set_log(fax_get_logging_state(ep->fax), opt.log_level, ep->tag);
}

static void open_socket(struct endpoint *ep, const char *host, int port)
{
    socklen_t alen = sizeof(ep->local);

    ep->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ep->fd < 0)
        die("socket");
    memset(&ep->local, 0, sizeof(ep->local));
    ep->local.sin_family = AF_INET;
    ep->local.sin_port = htons((uint16_t) port);
    if (inet_pton(AF_INET, host, &ep->local.sin_addr) != 1) {
        fprintf(stderr, "t38peer: bad local address '%s'\n", host);
        exit(2);
    }
    if (bind(ep->fd, (struct sockaddr *) &ep->local, sizeof(ep->local)) < 0)
        die("bind");
    if (getsockname(ep->fd, (struct sockaddr *) &ep->local, &alen) < 0)
        die("getsockname");
}

static void resolve(const char *hostport, struct sockaddr_in *sa)
{
    struct addrinfo hints;
    struct addrinfo *res;
    char host[256];
    const char *colon = strrchr(hostport, ':');
    size_t n;

    if (colon == NULL || colon == hostport || (n = colon - hostport) >= sizeof(host)) {
        fprintf(stderr, "t38peer: --remote wants HOST:PORT, not '%s'\n", hostport);
        exit(2);
    }
    memcpy(host, hostport, n);
    host[n] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL) {
        fprintf(stderr, "t38peer: cannot resolve '%s'\n", hostport);
        exit(2);
    }
    memcpy(sa, res->ai_addr, sizeof(*sa));
    freeaddrinfo(res);
}

/* Read every datagram waiting on ep's socket. */
static void service_socket(struct endpoint *ep)
{
    uint8_t buf[65536];
    struct sockaddr_in from;
    socklen_t flen;
    ssize_t n;
    double now;

    for (;;) {
        flen = sizeof(from);
        n = recvfrom(ep->fd, buf, sizeof(buf), 0, (struct sockaddr *) &from, &flen);
        if (n < 0)
            break;
        now = peer_wall_now();
        pcap_write(&from, &ep->local, buf, (int) n);
        if (!ep->have_remote) {
            /* Learn the peer from its first well-formed UDPTL packet. */
            if (udptl_parse(buf, (int) n) < 0) {
                ep->u.malformed++;
                continue;
            }
            ep->remote = from;
            ep->have_remote = 1;
            fprintf(stderr, "t38peer: %s: peer is %s:%d\n", ep->tag, inet_ntoa(from.sin_addr),
                    ntohs(from.sin_port));
        } else if (from.sin_addr.s_addr != ep->remote.sin_addr.s_addr
                   || from.sin_port != ep->remote.sin_port) {
            ep->u.foreign++;
            continue;
        }
        ep->started = 1;
        udptl_receive(&ep->u, buf, (int) n, now);
    }
    udptl_expire(&ep->u, peer_wall_now());
}

static void bump_logs(struct endpoint *ep)
{
    span_log_bump_samples(t30_get_logging_state(ep->t30), BLOCK);
    span_log_bump_samples(t38_core_get_logging_state(ep->core), BLOCK);
    if (ep->term)
        span_log_bump_samples(t38_terminal_get_logging_state(ep->term), BLOCK);
    if (ep->gw) {
        span_log_bump_samples(t38_gateway_get_logging_state(ep->gw), BLOCK);
        span_log_bump_samples(fax_get_logging_state(ep->fax), BLOCK);
    }
}

/* Advance one endpoint by one block of 20 ms. */
static void tick(struct endpoint *ep)
{
    int16_t to_gw[BLOCK];
    int16_t to_fax[BLOCK];
    int n;

    if (!ep->started)
        return;
    if (ep->term) {
        t38_terminal_send_timeout(ep->term, BLOCK);
    } else {
        n = ep->done ? 0 : fax_tx(ep->fax, to_gw, BLOCK);
        if (n < BLOCK)
            memset(to_gw + n, 0, (BLOCK - n) * sizeof(int16_t));
        t38_gateway_rx(ep->gw, to_gw, BLOCK);
        n = t38_gateway_tx(ep->gw, to_fax, BLOCK);
        if (n < BLOCK)
            memset(to_fax + n, 0, (BLOCK - n) * sizeof(int16_t));
        if (!ep->done)
            fax_rx(ep->fax, to_fax, BLOCK);
    }
    /* A held datagram waits for the next one, but not beyond 100 ms of the clock. */
    if (ep->held_count > 0 && ++ep->held_ticks >= 5)
        release_held(ep);
    ep->samples += BLOCK;
    bump_logs(ep);
}

/* ---- results --------------------------------------------------------------------------- */

static const char *compression_name(int encoding)
{
    switch (encoding) {
    case T4_COMPRESSION_ITU_T4_1D: return "mh";
    case T4_COMPRESSION_ITU_T4_2D: return "mr";
    case T4_COMPRESSION_ITU_T6: return "mmr";
    default: return "";
    }
}

static const char *resolution_name(int y)
{
    switch (y) {
    case T4_Y_RESOLUTION_STANDARD: return "standard";
    case T4_Y_RESOLUTION_FINE: return "fine";
    case T4_Y_RESOLUTION_SUPERFINE: return "superfine";
    default: return "";
    }
}

static const char *ec_name(void)
{
    return opt.ec == EC_NONE ? "none" : (opt.ec == EC_FEC ? "fec" : "redundancy");
}

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec
           + ru.ru_stime.tv_usec * 1e-6;
}

static void print_udptl(FILE *f, const struct udptl *u)
{
    fprintf(f, "{\"sent\": %ld, \"received\": %ld, \"recovered\": %ld, \"lost\": %ld, "
               "\"malformed\": %ld, \"duplicates\": %ld, \"late\": %ld, \"reordered\": %ld, "
               "\"foreign\": %ld, \"dropped\": %ld, \"ifp_errors\": %ld}",
            u->sent, u->received, u->recovered, u->lost, u->malformed, u->duplicates, u->late,
            u->reordered, u->foreign, u->dropped, u->ifp_errors);
}

static void print_result(const struct endpoint *ep, const char *reason, double wall)
{
    const t30_stats_t *st = &ep->stats;
    FILE *f = stdout;
    t38_stats_t gs;

    fprintf(f, "RESULT {\"exit\": ");
    peer_json_string(f, reason);
    fprintf(f, ", \"mode\": \"%s\", \"role\": \"%s\", \"calling\": %s", ep->gw ? "gateway" : "terminal",
            ep->sends ? "send" : "receive", ep->calls ? "true" : "false");
    fprintf(f, ", \"ok\": %s, \"done\": %s, \"completion_code\": %d, \"completion\": ",
            ep->completion == T30_ERR_OK ? "true" : "false", ep->done ? "true" : "false",
            ep->completion);
    peer_json_string(f, ep->completion >= 0 ? t30_completion_code_to_str(ep->completion)
                                            : "not finished");
    fprintf(f, ", \"pages\": %d, \"pages_tx\": %d, \"pages_rx\": %d, \"bit_rate\": %d, "
               "\"ecm\": %s",
            ep->sends ? st->pages_tx : st->pages_rx, st->pages_tx, st->pages_rx, st->bit_rate,
            st->error_correcting_mode ? "true" : "false");
    fprintf(f, ", \"x_resolution\": %d, \"y_resolution\": %d, \"resolution\": \"%s\"",
            st->x_resolution, st->y_resolution, resolution_name(st->y_resolution));
    fprintf(f, ", \"width\": %d, \"length\": %d, \"encoding\": %d, \"compression\": \"%s\"",
            st->width, st->length, st->encoding, compression_name(st->encoding));
    fprintf(f, ", \"bad_rows\": %d, \"ecm_retries\": %d, \"phase_b\": %d, \"phase_d\": %d",
            st->bad_rows, st->error_correcting_mode_retries, ep->phase_b, ep->phase_d);
    fprintf(f, ", \"remote_ident\": ");
    peer_json_string(f, ep->remote_ident);
    fprintf(f, ", \"local_ident\": ");
    peer_json_string(f, opt.ident);
    fprintf(f, ", \"local_port\": %d, \"remote_port\": %d", ntohs(ep->local.sin_port),
            ep->have_remote ? ntohs(ep->remote.sin_port) : 0);
    fprintf(f, ", \"t38_version\": %d, \"ec\": \"%s\", \"udptl\": ", opt.version, ec_name());
    print_udptl(f, &ep->u);
    fprintf(f, ", \"t38_missing\": %d", ep->core->missing_packets);
    if (ep->gw) {
        t38_gateway_get_transfer_statistics(ep->gw, &gs);
        fprintf(f, ", \"gateway\": {\"bit_rate\": %d, \"ecm\": %s, \"pages\": %d}", gs.bit_rate,
                gs.error_correcting_mode ? "true" : "false", gs.pages_transferred);
    }
    if (ep->done)
        fprintf(f, ", \"done_sim_seconds\": %.3f, \"done_wall_seconds\": %.3f",
                (double) ep->done_at / SAMPLE_RATE, ep->done_wall);
    fprintf(f, ", \"sim_seconds\": %.3f, \"wall_seconds\": %.3f, \"cpu_seconds\": %.3f}\n",
            (double) ep->samples / SAMPLE_RATE, wall, cpu_seconds());
    fflush(f);
}

/* ---- option parsing -------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: t38peer (--send FILE | --receive FILE) [--calling] [--gateway]\n"
            "               [--local [HOST:]PORT] [--remote HOST:PORT] [--ecm 0|1]\n"
            "               [--version 0..3] [--ec none|redundancy|fec] [--redundancy N]\n"
            "               [--fec-span N] [--fec-entries N] [--rate-management 1|2]\n"
            "               [--fill-bit-removal 0|1] [--max-bitrate BPS]\n"
            "               [--compressions mh,mr,mmr] [--resolutions standard,fine,superfine]\n"
            "               [--ident ID] [--speed F] [--timeout S] [--linger S]\n"
            "               [--log-level N] [--pcap FILE] [--loss P] [--reorder P] [--seed N]\n"
            "       t38peer --pairs N --send FILE [--receive DIR] [options]\n");
    exit(2);
}

static int int_arg(const char *s, int lo, int hi)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "t38peer: '%s' is not a number in %d..%d\n", s, lo, hi);
        exit(2);
    }
    return (int) v;
}

static double float_arg(const char *s, double lo, double hi)
{
    char *end;
    double v = strtod(s, &end);

    if (*s == '\0' || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "t38peer: '%s' is not a number in %g..%g\n", s, lo, hi);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"send", required_argument, NULL, 's'},
        {"receive", required_argument, NULL, 'r'},
        {"calling", no_argument, NULL, 'c'},
        {"gateway", no_argument, NULL, 'g'},
        {"local", required_argument, NULL, 'L'},
        {"remote", required_argument, NULL, 'R'},
        {"ecm", required_argument, NULL, 'e'},
        {"version", required_argument, NULL, 'v'},
        {"ec", required_argument, NULL, 'E'},
        {"redundancy", required_argument, NULL, 'n'},
        {"fec-span", required_argument, NULL, 'S'},
        {"fec-entries", required_argument, NULL, 'N'},
        {"rate-management", required_argument, NULL, 'm'},
        {"fill-bit-removal", required_argument, NULL, 'f'},
        {"max-bitrate", required_argument, NULL, 'b'},
        {"compressions", required_argument, NULL, 'C'},
        {"resolutions", required_argument, NULL, 'Z'},
        {"ident", required_argument, NULL, 'i'},
        {"speed", required_argument, NULL, 'x'},
        {"timeout", required_argument, NULL, 't'},
        {"linger", required_argument, NULL, 'l'},
        {"log-level", required_argument, NULL, 'V'},
        {"pcap", required_argument, NULL, 'P'},
        {"loss", required_argument, NULL, 'o'},
        {"reorder", required_argument, NULL, 'O'},
        {"seed", required_argument, NULL, 'D'},
        {"pairs", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's': opt.send_file = optarg; break;
        case 'r': opt.recv_file = optarg; break;
        case 'c': opt.calling = 1; break;
        case 'g': opt.gateway = 1; break;
        case 'L': opt.local = optarg; break;
        case 'R': opt.remote = optarg; break;
        case 'e': opt.ecm = int_arg(optarg, 0, 1); break;
        case 'v': opt.version = int_arg(optarg, 0, 3); break;
        case 'E':
            if (strcmp(optarg, "none") == 0)
                opt.ec = EC_NONE;
            else if (strcmp(optarg, "redundancy") == 0)
                opt.ec = EC_REDUNDANCY;
            else if (strcmp(optarg, "fec") == 0)
                opt.ec = EC_FEC;
            else
                usage();
            break;
        case 'n': opt.redundancy = int_arg(optarg, 0, MAX_SECONDARY); break;
        case 'S': opt.fec_span = int_arg(optarg, 1, MAX_FEC_SPAN); break;
        case 'N': opt.fec_entries = int_arg(optarg, 1, MAX_FEC_ENTRIES); break;
        case 'm': opt.rate_management = int_arg(optarg, 1, 2); break;
        case 'f': opt.fill_bit_removal = int_arg(optarg, 0, 1); break;
        case 'b': opt.max_bitrate = int_arg(optarg, 2400, 14400); break;
        case 'C': opt.compressions = peer_parse_list("t38peer", optarg, peer_compression_names,
                                                    peer_compression_bits); break;
        case 'Z': opt.resolutions = peer_parse_list("t38peer", optarg, peer_resolution_names,
                                                   peer_resolution_bits); break;
        case 'i': opt.ident = optarg; break;
        case 'x': opt.speed = float_arg(optarg, 0.01, 1000.0); break;
        case 't': opt.timeout = float_arg(optarg, 0.1, 1e6); break;
        case 'l': opt.linger = float_arg(optarg, 0.0, 60.0); break;
        case 'V': opt.log_level = int_arg(optarg, 0, 10); break;
        case 'P': opt.pcap = optarg; break;
        case 'o': opt.loss = float_arg(optarg, 0.0, 1.0); break;
        case 'O': opt.reorder = float_arg(optarg, 0.0, 1.0); break;
        case 'D': opt.seed = (unsigned) int_arg(optarg, 1, 0x7FFFFFFF); break;
        case 'p': opt.pairs = int_arg(optarg, 1, MAX_PAIRS); break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    if (opt.pairs) {
        if (opt.send_file == NULL || opt.gateway || opt.remote)
            usage();
    } else if ((opt.send_file == NULL) == (opt.recv_file == NULL)) {
        usage();
    }
    if (opt.rate_management == 1 && (opt.recv_file != NULL || opt.gateway || opt.pairs)) {
        /* SpanDSP 0.0.6's T.30 in "no TCF" mode never answers DCS when it receives, and its
           gateway always relays TCF. */
        fprintf(stderr, "t38peer: --rate-management 1 (local TCF) works only for a sending "
                        "t38_terminal with SpanDSP 0.0.6\n");
        exit(2);
    }
    if (opt.fec_span * opt.fec_entries > HIST / 2) {
        fprintf(stderr, "t38peer: --fec-span times --fec-entries must be at most %d\n", HIST / 2);
        exit(2);
    }
    if (opt.log_level < 0)
        opt.log_level = opt.pairs ? 0 : SPAN_LOG_FLOW;
    rng_state = opt.seed;
}

static void on_signal(int sig)
{
    (void) sig;
    got_signal = 1;
}

static void log_to_stderr(int level, const char *text)
{
    (void) level;
    fputs(text, stderr);
}

/* Wait for the next tick's wall time, reading datagrams meanwhile.  Returns -1 on a signal. */
static int pace(double *next, struct endpoint *eps, int n, struct pollfd *fds)
{
    double step = (double) BLOCK / SAMPLE_RATE / opt.speed;
    double t = peer_wall_now();
    double wait;
    struct timespec ts;
    int i;

    if (*next < t - 0.1)
        *next = t - 0.1;        /* after a stall, do not run in a burst to catch up */
    *next += step;
    do {
        wait = *next - t;
        if (wait < 0.0)
            wait = 0.0;
        ts.tv_sec = (time_t) wait;
        ts.tv_nsec = (long) ((wait - (double) ts.tv_sec) * 1e9);
        for (i = 0; i < n; i++) {
            fds[i].fd = eps[i].fd;
            fds[i].events = POLLIN;
            fds[i].revents = 0;
        }
        ppoll(fds, n, &ts, NULL);
        for (i = 0; i < n; i++) {
            if (fds[i].revents)
                service_socket(&eps[i]);
            else
                udptl_expire(&eps[i].u, peer_wall_now());
        }
        if (got_signal)
            return -1;
        t = peer_wall_now();
    } while (t < *next);
    return 0;
}

/* ---- single endpoint ------------------------------------------------------------------- */

static int run_single(void)
{
    static struct endpoint ep;
    struct pollfd fds[1];
    const char *reason = NULL;
    char host[64] = "127.0.0.1";
    const char *colon;
    int port = 0;
    double next;
    double t;

    snprintf(ep.tag, sizeof(ep.tag), "%s", opt.gateway ? "FAX" : "T38");
    if (opt.local) {
        colon = strrchr(opt.local, ':');
        if (colon) {
            snprintf(host, sizeof(host), "%.*s", (int) (colon - opt.local), opt.local);
            port = int_arg(colon + 1, 0, 65535);
        } else {
            port = int_arg(opt.local, 0, 65535);
        }
    }
    open_socket(&ep, host, port);
    if (opt.remote) {
        resolve(opt.remote, &ep.remote);
        ep.have_remote = 1;
        ep.started = 1;
    }
    udptl_init(&ep.u, opt.version, deliver_ifp, &ep);
    if (opt.gateway)
        init_gateway_endpoint(&ep, opt.calling, opt.send_file != NULL,
                              opt.send_file ? opt.send_file : opt.recv_file);
    else
        init_terminal_endpoint(&ep, opt.calling, opt.send_file != NULL,
                               opt.send_file ? opt.send_file : opt.recv_file);
    if (opt.pcap)
        pcap_open(opt.pcap);
    printf("PORT %d\nREADY\n", ntohs(ep.local.sin_port));
    fflush(stdout);

    next = peer_wall_now();
    while (reason == NULL) {
        if (pace(&next, &ep, 1, fds) < 0) {
            reason = "signal";
            break;
        }
        tick(&ep);
        t = peer_wall_now();
        if (t - start_wall > opt.timeout)
            reason = "timeout";
        else if (ep.done && t - start_wall - ep.done_wall >= opt.linger)
            reason = "completed";
    }
    release_held(&ep);
    if (pcap_file)
        fclose(pcap_file);
    print_result(&ep, reason, peer_wall_now() - start_wall);
    return 0;
}

/* ---- many pairs in one process, for the benchmark -------------------------------------- */

static int run_pairs(void)
{
    struct endpoint *eps = xcalloc(2 * opt.pairs, sizeof(struct endpoint));
    struct pollfd *fds = xcalloc(2 * opt.pairs, sizeof(struct pollfd));
    char dir_template[] = "/tmp/t38peer-XXXXXX";
    const char *dir = opt.recv_file;
    char path[4096];
    const char *reason = NULL;
    struct udptl total;
    double cpu0 = cpu_seconds();
    double next;
    double t;
    double wall;
    double cpu;
    int n = 2 * opt.pairs;
    int i;
    int all_done;
    int calls_ok = 0;
    int pages_ok = 0;
    int pages_tx = 0;
    double last_done = 0.0;
    int64_t samples = 0;

    if (dir == NULL) {
        dir = mkdtemp(dir_template);
        if (dir == NULL)
            die("mkdtemp");
    }
    for (i = 0; i < n; i++) {
        snprintf(eps[i].tag, sizeof(eps[i].tag), "%c%d", i % 2 ? 'R' : 'S', i / 2);
        open_socket(&eps[i], "127.0.0.1", 0);
        udptl_init(&eps[i].u, opt.version, deliver_ifp, &eps[i]);
    }
    for (i = 0; i < n; i++) {
        eps[i].remote = eps[i ^ 1].local;
        eps[i].have_remote = 1;
        eps[i].started = 1;
        if (i % 2 == 0) {
            init_terminal_endpoint(&eps[i], 1, 1, opt.send_file);
        } else {
            snprintf(path, sizeof(path), "%s/rx-%d.tif", dir, i / 2);
            init_terminal_endpoint(&eps[i], 0, 0, path);
        }
    }
    printf("READY\n");
    fflush(stdout);

    next = peer_wall_now();
    while (reason == NULL) {
        if (pace(&next, eps, n, fds) < 0) {
            reason = "signal";
            break;
        }
        all_done = 1;
        for (i = 0; i < n; i++) {
            tick(&eps[i]);
            all_done &= eps[i].done;
        }
        samples += BLOCK;
        t = peer_wall_now();
        if (t - start_wall > opt.timeout)
            reason = "timeout";
        else if (all_done)
            reason = "completed";
    }
    wall = peer_wall_now() - start_wall;
    cpu = cpu_seconds() - cpu0;
    memset(&total, 0, sizeof(total));
    for (i = 0; i < n; i++) {
        if (eps[i].done && eps[i].done_wall > last_done)
            last_done = eps[i].done_wall;
        if (i % 2 == 1) {
            if (eps[i].completion == T30_ERR_OK && eps[i - 1].completion == T30_ERR_OK) {
                calls_ok++;
                pages_ok += eps[i].stats.pages_rx;
            }
            if (opt.recv_file == NULL) {
                snprintf(path, sizeof(path), "%s/rx-%d.tif", dir, i / 2);
                unlink(path);
            }
        } else {
            pages_tx += eps[i].stats.pages_tx;
        }
        total.sent += eps[i].u.sent;
        total.received += eps[i].u.received;
        total.recovered += eps[i].u.recovered;
        total.lost += eps[i].u.lost;
        total.malformed += eps[i].u.malformed;
        total.duplicates += eps[i].u.duplicates;
        total.late += eps[i].u.late;
        total.reordered += eps[i].u.reordered;
        total.foreign += eps[i].u.foreign;
        total.dropped += eps[i].u.dropped;
        total.ifp_errors += eps[i].u.ifp_errors;
    }
    if (opt.recv_file == NULL)
        rmdir(dir);
    printf("RESULT {\"exit\": \"%s\", \"mode\": \"pairs\", \"pairs\": %d, \"ok\": %s, "
           "\"calls_ok\": %d, \"pages_ok\": %d, \"pages_tx\": %d, \"speed\": %g, "
           "\"ecm\": %s, \"t38_version\": %d, \"ec\": \"%s\", "
           "\"sim_seconds\": %.3f, \"wall_seconds\": %.3f, \"last_done_wall_seconds\": %.3f, "
           "\"cpu_seconds\": %.3f, \"cpu_per_page\": %.6f, \"udptl\": ",
           reason, opt.pairs, calls_ok == opt.pairs ? "true" : "false", calls_ok, pages_ok,
           pages_tx, opt.speed, opt.ecm ? "true" : "false", opt.version, ec_name(),
           (double) samples / SAMPLE_RATE, wall, last_done, cpu,
           pages_ok ? cpu / pages_ok : 0.0);
    print_udptl(stdout, &total);
    printf("}\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    span_set_message_handler(log_to_stderr);
    start_wall = peer_wall_now();
    return opt.pairs ? run_pairs() : run_single();
}
