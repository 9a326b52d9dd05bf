/*
 * faxline - a simulated telephone line for fax tests, built on libspandsp.
 *
 * Side A is an emulated Class 1 fax modem (SpanDSP t31) presented to a
 * DTE on a pseudo-terminal, or (--a-send) a SpanDSP audio fax terminal that
 * calls and sends a TIFF file.  Side B is either a SpanDSP audio fax terminal
 * (fax.h, sending or receiving a TIFF file), a second emulated Class 1 modem
 * on a second pseudo-terminal, or (--peer voice) a telephone a person answers:
 * speech-band sound, never a fax tone.  The two sides exchange 8000 samples/s audio in
 * blocks of 160 samples (20 ms), through a delay line and optional white noise.
 *
 * Stdout protocol (one line each): ["PTY A <path>"], ["PTY B <path>"], "READY",
 * and at exit "RESULT <json>".  Logs go to stderr.  See README.md.
 */
#define _GNU_SOURCE
#define SPANDSP_EXPOSE_INTERNAL_STRUCTURES
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <spandsp.h>

#include "peer_common.h"

#define SAMPLE_RATE 8000
#define BLOCK 160
#define MAX_OUT (16 * 1024 * 1024)
#define A_IDENT "FAXLINE A"
#define DLE 0x10
#define ETX 0x03

enum call_state { IDLE, RINGING, IN_CALL, ENDED };

struct modem {
    char name;
    char tag[8];
    t31_state_t *t31;
    int master;
    int slave;
    char path[128];
    uint8_t in[4096];
    size_t in_len;
    uint8_t *out;
    size_t out_len;
    size_t out_cap;
    enum call_state call;
    int dte_turn;
    int pending_event;   /* AT_CALL_EVENT_* to deliver at the next tick, 0 = none */
    int64_t next_ring;
    int rings;
    struct modem *other;
};

/* One direction of the line.  Each sample in the delay line carries a flag saying whether
   the sending side was transmitting when it went in; noise is added only to those samples
   (see line_carry). */
struct delay_line {
    int16_t *buf;
    uint8_t *sending;
    int len;
    int pos;
    int quiet;          /* zero samples in a row from the sending side */
    int was_sending;    /* the last sample out of the line was under a signal */
    int seed;           /* this direction's noise seed; each burst adds its number */
    int bursts;         /* signal bursts out of the line so far */
    awgn_state_t *noise;
};

/* A signal's own zero crossings give runs of a few exact zeros; a run this long (2 ms)
   means the sending side has stopped. */
#define QUIET_SAMPLES 16

static struct {
    int terminal;           /* side B is a fax terminal */
    int voice;              /* side B is a telephone a person answers (--peer voice) */
    const char *a_file;     /* side A is a fax terminal sending this file (--a-send) */
    int term_sends;
    int term_calls;
    const char *file;
    int ecm;
    const char *ident;
    const char *header;
    int modems;
    int resolutions;
    int compressions;
    double speed;
    int delay_ms;
    double noise_dbm0;
    int noise_on;
    int seed;
    double timeout;
    double linger;
    int answer_delay_ms;
    int ring_ms;
    int max_rings;
    int log_level;
    int trace;
} opt = {
    .ecm = 1,
    .ident = "FAXLINE",
    .modems = T30_SUPPORT_V27TER | T30_SUPPORT_V29 | T30_SUPPORT_V17,
    .resolutions = T30_SUPPORT_STANDARD_RESOLUTION | T30_SUPPORT_FINE_RESOLUTION
                   | T30_SUPPORT_SUPERFINE_RESOLUTION | T30_SUPPORT_R8_RESOLUTION,
    .compressions = T30_SUPPORT_T4_1D_COMPRESSION | T30_SUPPORT_T4_2D_COMPRESSION
                    | T30_SUPPORT_T6_COMPRESSION,
    .speed = 1.0,
    .delay_ms = 30,
    .seed = 1234567,
    .timeout = 300.0,
    .linger = 1.0,
    .answer_delay_ms = 500,
    .ring_ms = 5000,
    .max_rings = 10,
    .log_level = SPAN_LOG_FLOW,
};

static struct modem modem_a;
static struct modem modem_b;
/* A SpanDSP audio fax terminal: side B (--send/--receive), or side A (--a-send). */
struct terminal {
    const char *tag;
    fax_state_t *fax;
    int running;            /* off hook */
    int done;               /* phase E reached */
    int completion;
    int64_t done_at;        /* samples */
    double done_wall;       /* wall seconds since start */
    t30_stats_t stats;
    char remote_ident[64];
    int phase_b;
    int phase_d;
};

static struct terminal term = {.tag = "FAX", .completion = -1};
static struct terminal term_a = {.tag = "FAX-A", .completion = -1};
static int64_t dial_at = -1;        /* when side A dialled, in samples */
static double dial_wall;            /* and in wall seconds since start */
static double start_wall;
static int64_t now;                 /* simulated time, in samples */
static int64_t realtime_samples;    /* simulated time spent paced at real time */
static int64_t term_start_at = -1;  /* when the terminal goes off hook, in samples */
/* Side B as a telephone a person answers: off hook --answer-delay ms after A dials, on
   hook when A hangs up; every call alike. */
static struct {
    int64_t answer_at;      /* samples; -1 = not being called */
    int answered;           /* off hook in the current call */
    int calls;              /* calls answered */
    int64_t answered_at;    /* when the first was, in samples */
    int64_t talked;         /* samples of speech-band sound made so far */
} voice = {.answer_at = -1};
static volatile sig_atomic_t got_signal;
static double last_input_wall;       /* when a DTE last sent something, wall clock */

static double sim_seconds(void)
{
    return (double) now / SAMPLE_RATE;
}

static void trace_bytes(struct modem *m, const char *dir, const uint8_t *buf, size_t len)
{
    size_t i;
    size_t printable = 0;

    if (!opt.trace)
        return;
    for (i = 0; i < len; i++) {
        if ((buf[i] >= 0x20 && buf[i] < 0x7F) || buf[i] == '\r' || buf[i] == '\n')
            printable++;
    }
    fprintf(stderr, "%10.3f %c%s ", sim_seconds(), m->name, dir);
    if (printable == len && len < 200) {
        for (i = 0; i < len; i++) {
            if (buf[i] == '\r')
                fputs("\\r", stderr);
            else if (buf[i] == '\n')
                fputs("\\n", stderr);
            else
                fputc(buf[i], stderr);
        }
    } else {
        fprintf(stderr, "[%zu bytes:", len);
        for (i = 0; i < len && i < 24; i++)
            fprintf(stderr, " %02X", buf[i]);
        fputs(len > 24 ? " ...]" : "]", stderr);
    }
    fputc('\n', stderr);
}

/* Is this piece of modem output a final result code (verbose or numeric)? */
static int result_code(const uint8_t *buf, size_t len)
{
    static const char *codes[] = {"OK", "CONNECT", "RING", "NO CARRIER", "ERROR", "NO DIALTONE",
                                  "BUSY", "NO ANSWER", "+FCERROR", NULL};
    char text[32];
    size_t n = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        if (buf[i] == '\r' || buf[i] == '\n')
            continue;
        if (n >= sizeof(text) - 1)
            return 0;
        text[n++] = (char) buf[i];
    }
    text[n] = '\0';
    if (n == 0)
        return 0;
    for (i = 0; codes[i]; i++) {
        if (strcmp(text, codes[i]) == 0)
            return 1;
    }
    return n <= 2 && text[0] >= '0' && text[0] <= '9' && (n == 1 || (text[1] >= '0' && text[1] <= '9'));
}

static int at_tx(at_state_t *s, void *user_data, const uint8_t *buf, size_t len)
{
    struct modem *m = user_data;
    int mode = s->at_rx_mode;

    (void) s;
    trace_bytes(m, "<", buf, len);
    if (result_code(buf, len)) {
        /* A CONNECT for a receive command starts data delivery: the modem keeps the turn. */
        if (!(mode == AT_MODE_DELIVERY && memmem(buf, len, "CONNECT", 7) != NULL)
            && !(mode == AT_MODE_DELIVERY && len <= 3 && buf[0] == '1'))
            m->dte_turn = 1;
    }
    if (m->out_len + len > MAX_OUT) {
        fprintf(stderr, "faxline: %c: DTE is not reading; dropping %zu bytes\n", m->name, len);
        return 0;
    }
    if (m->out_len + len > m->out_cap) {
        size_t cap = m->out_cap ? m->out_cap : 65536;
        while (cap < m->out_len + len)
            cap *= 2;
        m->out = realloc(m->out, cap);
        if (m->out == NULL) {
            perror("faxline: realloc");
            exit(2);
        }
        m->out_cap = cap;
    }
    memcpy(m->out + m->out_len, buf, len);
    m->out_len += len;
    return 0;
}

static void terminal_answer_or_dial_scheduled(void)
{
    term_start_at = now + (int64_t) opt.answer_delay_ms * SAMPLE_RATE / 1000;
}

static int modem_control(t31_state_t *s, void *user_data, int op, const char *num)
{
    struct modem *m = user_data;

    (void) s;
    switch (op) {
    case AT_MODEM_CONTROL_CALL:
        fprintf(stderr, "%10.3f %c: dialling '%s'\n", sim_seconds(), m->name, num ? num : "");
        if (m->other != NULL && m->other->call == ENDED) {
            m->pending_event = AT_CALL_EVENT_BUSY;
            break;
        }
        m->call = IN_CALL;
        m->pending_event = AT_CALL_EVENT_CONNECTED;
        if (dial_at < 0) {
            dial_at = now;
            dial_wall = peer_wall_now() - start_wall;
        }
        if (opt.terminal) {
            if (!opt.term_calls && term_start_at < 0)
                terminal_answer_or_dial_scheduled();
        } else if (opt.voice) {
            voice.answer_at = now + (int64_t) opt.answer_delay_ms * SAMPLE_RATE / 1000;
        } else if (m->other != NULL && m->other->call != IN_CALL) {
            /* A modem whose DTE has already answered (ATA on an idle line) takes the call. */
            m->other->call = RINGING;
            m->other->next_ring = now;
            m->other->rings = 0;
        }
        break;
    case AT_MODEM_CONTROL_ANSWER:
        fprintf(stderr, "%10.3f %c: answering\n", sim_seconds(), m->name);
        m->call = IN_CALL;
        m->pending_event = AT_CALL_EVENT_ANSWERED;
        if (opt.terminal && opt.term_calls && !term.running)
            term_start_at = now;
        if (opt.voice && opt.term_calls && !voice.answered)
            voice.answer_at = now;      /* the caller is on the line as soon as A answers */
        break;
    case AT_MODEM_CONTROL_HANGUP:
    case AT_MODEM_CONTROL_ONHOOK:
        if (m->call == IN_CALL || m->call == RINGING) {
            fprintf(stderr, "%10.3f %c: on hook\n", sim_seconds(), m->name);
            m->call = (m->call == IN_CALL) ? ENDED : IDLE;
            if (m->other != NULL && m->other->call == RINGING)
                m->other->call = IDLE;
            if (opt.voice && voice.answered)
                fprintf(stderr, "%10.3f VOICE: on hook\n", sim_seconds());
            voice.answered = 0;
            voice.answer_at = -1;
        }
        break;
    default:
        break;
    }
    return 0;
}

static int phase_b_handler(t30_state_t *s, void *user_data, int result)
{
    struct terminal *t = user_data;

    (void) s;
    t->phase_b++;
    fprintf(stderr, "%10.3f %s: phase B (0x%X) %s\n", sim_seconds(), t->tag, result,
            t30_frametype(result));
    return T30_ERR_OK;
}

static int phase_d_handler(t30_state_t *s, void *user_data, int result)
{
    struct terminal *t = user_data;

    (void) s;
    t->phase_d++;
    fprintf(stderr, "%10.3f %s: phase D (0x%X) %s\n", sim_seconds(), t->tag, result,
            t30_frametype(result));
    return T30_ERR_OK;
}

static void phase_e_handler(t30_state_t *s, void *user_data, int completion_code)
{
    struct terminal *t = user_data;
    const char *id;

    t->done = 1;
    t->done_at = now;
    t->done_wall = peer_wall_now() - start_wall;
    t->completion = completion_code;
    t30_get_transfer_statistics(s, &t->stats);
    id = t30_get_rx_ident(s);
    snprintf(t->remote_ident, sizeof(t->remote_ident), "%s", id ? id : "");
    fprintf(stderr, "%10.3f %s: phase E %d %s\n", sim_seconds(), t->tag, completion_code,
            t30_completion_code_to_str(completion_code));
}

static void open_pty(struct modem *m)
{
    struct termios t;
    int fd;

    fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (fd < 0 || grantpt(fd) < 0 || unlockpt(fd) < 0 || ptsname_r(fd, m->path, sizeof(m->path))) {
        perror("faxline: pseudo-terminal");
        exit(2);
    }
    m->master = fd;
    /* Hold the slave open: the DTE may open and close it at will without the master
       seeing a hang-up, and it starts out in raw mode. */
    m->slave = open(m->path, O_RDWR | O_NOCTTY);
    if (m->slave < 0 || tcgetattr(m->slave, &t) < 0) {
        perror("faxline: slave");
        exit(2);
    }
    cfmakeraw(&t);
    cfsetispeed(&t, B115200);
    cfsetospeed(&t, B115200);
    tcsetattr(m->slave, TCSANOW, &t);
    fcntl(m->master, F_SETFL, fcntl(m->master, F_GETFL) | O_NONBLOCK);
}

static void init_modem(struct modem *m, char name)
{
    m->name = name;
    open_pty(m);
    m->t31 = t31_init(NULL, at_tx, m, modem_control, m, NULL, NULL);
    if (m->t31 == NULL) {
        fprintf(stderr, "faxline: t31_init failed\n");
        exit(2);
    }
    /* span_log_set_tag keeps the pointer, so the tag lives as long as the modem. */
    snprintf(m->tag, sizeof(m->tag), "%c.T31", name);
    peer_set_log(t31_get_logging_state(m->t31), opt.log_level, m->tag);
    peer_set_log(&m->t31->at_state.logging, opt.log_level, m->tag);
}

static void init_terminal(struct terminal *t, int calls, int sends, const char *file,
                          const char *ident)
{
    t30_state_t *t30;

    t->fax = fax_init(NULL, calls);
    if (t->fax == NULL) {
        fprintf(stderr, "faxline: fax_init failed\n");
        exit(2);
    }
    t30 = fax_get_t30_state(t->fax);
    peer_setup_t30(t30, sends, file, ident, opt.ecm, opt.resolutions, opt.compressions,
                   opt.log_level, t->tag);
    if (opt.header)
        t30_set_tx_page_header_info(t30, opt.header);
    t30_set_supported_modems(t30, opt.modems);
    t30_set_phase_b_handler(t30, phase_b_handler, t);
    t30_set_phase_d_handler(t30, phase_d_handler, t);
    t30_set_phase_e_handler(t30, phase_e_handler, t);
    fax_set_transmit_on_idle(t->fax, 1);
    peer_set_log(fax_get_logging_state(t->fax), opt.log_level, t->tag);
}

static void init_line(struct delay_line *l)
{
    l->len = opt.delay_ms * SAMPLE_RATE / 1000;
    l->buf = calloc(l->len > 0 ? l->len : 1, sizeof(int16_t));
    l->sending = calloc(l->len > 0 ? l->len : 1, 1);
    if (l->buf == NULL || l->sending == NULL) {
        perror("faxline: calloc");
        exit(2);
    }
    l->quiet = QUIET_SAMPLES;
    l->seed = opt.seed;
    opt.seed += 1000003;
    if (opt.noise_on)
        l->noise = awgn_init_dbm0(NULL, l->seed, (float) opt.noise_dbm0);
}

/* Carry one block through this direction of the line: delay it, and add white noise to
   the samples the sending side transmitted: from its first non-zero sample until
   QUIET_SAMPLES zeros in a row (silence is exact zeros, from the modems' idle output or
   our padding).

   Noise rides on the far end's signal, not on an idle line: SpanDSP's V.21 and
   high-speed receivers switch their carrier detect on above about -43 dBm0 and off below
   about -48 dBm0 (the V.21 limits), measured after a first-difference filter that lifts
   white noise by 3 dB.  Continuous white noise at -47 dBm0 or louder therefore reads as a
   carrier that never drops; T.30 waits for the carrier to drop before it answers, so every
   call stalled in phase B whatever the signal-to-noise ratio.  Noise that starts before
   the signal also makes carrier detect fire early, and V.17 short training then fails.
   Each burst's noise restarts from the seed and the burst's number (see below). */
static void line_carry(struct delay_line *l, int16_t *amp)
{
    int i;
    int16_t x;
    uint8_t sending;
    int v;

    for (i = 0; i < BLOCK; i++) {
        l->quiet = amp[i] != 0 ? 0 : l->quiet + (l->quiet < QUIET_SAMPLES);
        sending = l->quiet < QUIET_SAMPLES;
        if (l->len > 0) {
            x = l->buf[l->pos];
            l->buf[l->pos] = amp[i];
            v = l->sending[l->pos];
            l->sending[l->pos] = sending;
            sending = (uint8_t) v;
            l->pos = (l->pos + 1) % l->len;
        } else {
            x = amp[i];
        }
        if (l->noise && sending && !l->was_sending) {
            /* Each burst gets noise of its own from the seed, whatever the DTEs' timing
               made of the bursts before it: a call that takes the same course meets the
               same noise. */
            l->bursts++;
            awgn_init_dbm0(l->noise, l->seed + l->bursts, (float) opt.noise_dbm0);
        }
        l->was_sending = sending;
        if (l->noise && sending) {
            v = x + awgn(l->noise);
            x = (int16_t) (v > 32767 ? 32767 : (v < -32768 ? -32768 : v));
        }
        amp[i] = x;
    }
}

/* Bytes the modem can take now, stopping after a DLE ETX or a command line's CR so that
   whatever follows is interpreted in the mode the modem switches to. */
static size_t acceptable(struct modem *m)
{
    t31_state_t *t = m->t31;
    size_t limit = m->in_len;
    size_t i;
    int dled;

    switch (t->at_state.at_rx_mode) {
    case AT_MODE_DELIVERY:
        return limit ? 1 : 0;
    case AT_MODE_STUFFED:
        {
            int room = T31_TX_BUF_LEN - 2 - (t->tx.in_bytes - t->tx.out_bytes);
            if (room <= 0)
                return 0;
            if ((size_t) room < limit)
                limit = room;
        }
        /* fall through */
    case AT_MODE_HDLC:
        dled = t->dled;
        for (i = 0; i < limit; i++) {
            if (dled) {
                dled = 0;
                if (m->in[i] == ETX)
                    return i + 1;
            } else if (m->in[i] == DLE) {
                dled = 1;
            }
        }
        return limit;
    default:
        for (i = 0; i < limit; i++) {
            if (m->in[i] == '\r')
                return i + 1;
        }
        return limit;
    }
}

/* How many frame bytes t31 will store for these DTE bytes (DLE DLE = one 0x10, DLE SUB = two). */
static size_t hdlc_unstuffed(int dled, const uint8_t *buf, size_t n)
{
    size_t out = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (dled) {
            dled = 0;
            out += (buf[i] == 0x1A) ? 2 : (buf[i] == ETX ? 0 : 1);
        } else if (buf[i] == DLE) {
            dled = 1;
        } else {
            out++;
        }
    }
    return out;
}

static void feed_modem(struct modem *m)
{
    size_t n;
    t31_state_t *t = m->t31;

    while (m->in_len > 0) {
        n = acceptable(m);
        if (n == 0)
            break;
        if (t->at_state.at_rx_mode == AT_MODE_HDLC
            && t->hdlc_tx.len + hdlc_unstuffed(t->dled, m->in, n) > T31_MAX_HDLC_LEN - 4) {
            fprintf(stderr, "faxline: %c: HDLC frame from the DTE too long; discarding it\n",
                    m->name);
            t->hdlc_tx.len = 0;
            t->dled = 0;
            memmove(m->in, m->in + n, m->in_len - n);
            m->in_len -= n;
            continue;
        }
        trace_bytes(m, ">", m->in, n);
        t31_at_rx(t, (const char *) m->in, (int) n);
        memmove(m->in, m->in + n, m->in_len - n);
        m->in_len -= n;
    }
}

static void service_modem(struct modem *m)
{
    ssize_t r;

    if (m->t31 == NULL)
        return;
    if (m->in_len < sizeof(m->in)) {
        r = read(m->master, m->in + m->in_len, sizeof(m->in) - m->in_len);
        if (r > 0) {
            m->in_len += r;
            m->dte_turn = 0;
            last_input_wall = peer_wall_now();
        }
    }
    feed_modem(m);
    while (m->out_len > 0) {
        r = write(m->master, m->out, m->out_len);
        if (r <= 0)
            break;
        memmove(m->out, m->out + r, m->out_len - r);
        m->out_len -= r;
    }
}

/* Is the DTE expected to act before the modem can make progress on its own?  While it is,
   simulated time runs at real time, so the DTE's reaction time stays realistic. */
static int dte_has_turn(struct modem *m)
{
    t31_state_t *t;

    if (m->t31 == NULL || m->call == ENDED)
        return 0;
    if (m->call == IDLE || m->call == RINGING)
        return 1;
    t = m->t31;
    if (m->in_len > 0)
        return 0;
    switch (t->at_state.at_rx_mode) {
    case AT_MODE_HDLC:
        return t->hdlc_tx.len > 0 || (t->audio.modems.hdlc_tx.len == 0
                                      && !t->audio.modems.hdlc_tx.tx_end) || m->dte_turn;
    case AT_MODE_STUFFED:
        return t->tx.in_bytes - t->tx.out_bytes < 512;
    default:
        return m->dte_turn;
    }
}

static void ring_and_events(struct modem *m)
{
    int ev;

    if (m->t31 == NULL)
        return;
    if (m->pending_event) {
        ev = m->pending_event;
        m->pending_event = 0;
        t31_call_event(m->t31, ev);
        if (ev == AT_CALL_EVENT_BUSY)
            m->call = IDLE;
        if (ev == AT_CALL_EVENT_NO_ANSWER) {
            fprintf(stderr, "%10.3f %c: no answer\n", sim_seconds(), m->name);
            m->call = ENDED;
        }
    }
    if (m->call == RINGING && now >= m->next_ring) {
        if (m->rings >= opt.max_rings) {
            m->call = IDLE;
            /* The caller's modem heard the ringback go on until the network gave up:
               NO ANSWER, as a modem with call progress monitoring (ATX4) says.  Its
               CNG and S7 timer stop (they would end in NO CARRIER). */
            if (m->other != NULL && m->other->t31 != NULL && m->other->call == IN_CALL) {
                at_modem_control(&m->other->t31->at_state, AT_MODEM_CONTROL_RESTART,
                                 (const char *) (intptr_t) FAX_MODEM_SILENCE_TX);
                m->other->pending_event = AT_CALL_EVENT_NO_ANSWER;
            }
            return;
        }
        m->rings++;
        m->next_ring = now + (int64_t) opt.ring_ms * SAMPLE_RATE / 1000;
        t31_call_event(m->t31, AT_CALL_EVENT_ALERTING);
    }
}

/* What the person at side B says: two partials (300 and 520 Hz, clear of CNG's 1100 Hz,
   CED's 2100 Hz and V.21's 1650/1850 Hz), in 250 ms syllables 150 ms apart, 2 s phrases
   with 1 s pauses, about -15 dBm0 while sounding. */
static int voice_tx(int16_t *amp, int len)
{
    int i;
    int64_t t;
    double v;

    for (i = 0; i < len; i++) {
        t = voice.talked++;
        v = 0.0;
        if (t % (3 * SAMPLE_RATE) < 2 * SAMPLE_RATE && t % (SAMPLE_RATE * 2 / 5) < SAMPLE_RATE / 4)
            v = 3000.0 * sin(2.0 * M_PI * 300.0 * t / SAMPLE_RATE)
                + 2000.0 * sin(2.0 * M_PI * 520.0 * t / SAMPLE_RATE);
        amp[i] = (int16_t) v;
    }
    return len;
}

/* Is side B off hook (in the call)? */
static int b_off_hook(void)
{
    if (opt.terminal)
        return term.running;
    if (opt.voice)
        return voice.answered;
    return modem_b.call == IN_CALL;
}

static void tick(void)
{
    int16_t a_amp[BLOCK];
    int16_t b_amp[BLOCK];
    static struct delay_line a_to_b;
    static struct delay_line b_to_a;
    static int lines_ready;
    int n;

    if (!lines_ready) {
        init_line(&a_to_b);
        init_line(&b_to_a);
        lines_ready = 1;
    }
    ring_and_events(&modem_a);
    ring_and_events(&modem_b);
    /* A terminal on side A dials at once; the one on side B answers after the delay. */
    if (opt.a_file && !term_a.running) {
        term_a.running = 1;
        modem_a.call = IN_CALL;
        dial_at = now;
        dial_wall = peer_wall_now() - start_wall;
        terminal_answer_or_dial_scheduled();
        fprintf(stderr, "%10.3f FAX-A: off hook, dialling\n", sim_seconds());
    }
    if (opt.a_file && term_a.done && modem_a.call == IN_CALL)
        modem_a.call = ENDED;
    /* A calling terminal, or person, rings modem A once its DTE has put it in fax class
       (a person calls once). */
    if (opt.term_calls && !b_off_hook() && modem_a.call == IDLE
        && modem_a.t31->at_state.fclass_mode != 0 && modem_a.rings == 0
        && (opt.voice ? voice.calls == 0 && voice.answer_at < 0 : term_start_at < 0)) {
        modem_a.call = RINGING;
        modem_a.next_ring = now + (int64_t) opt.answer_delay_ms * SAMPLE_RATE / 1000;
    }
    if (opt.terminal && !term.running && term_start_at >= 0 && now >= term_start_at
        && (opt.term_calls ? modem_a.call == IN_CALL : 1)) {
        term.running = 1;
        fprintf(stderr, "%10.3f FAX: off hook\n", sim_seconds());
    }
    if (opt.voice && !voice.answered && voice.answer_at >= 0 && now >= voice.answer_at
        && modem_a.call == IN_CALL) {
        voice.answered = 1;
        if (voice.calls++ == 0)
            voice.answered_at = now;
        fprintf(stderr, "%10.3f VOICE: off hook, talking\n", sim_seconds());
    }

    if (opt.a_file)
        n = (term_a.running && !term_a.done) ? fax_tx(term_a.fax, a_amp, BLOCK) : 0;
    else
        n = t31_tx(modem_a.t31, a_amp, BLOCK);
    if (n < BLOCK)
        memset(a_amp + n, 0, (BLOCK - n) * sizeof(int16_t));
    if (opt.terminal) {
        n = (term.running && !term.done) ? fax_tx(term.fax, b_amp, BLOCK) : 0;
    } else if (opt.voice) {
        n = voice.answered ? voice_tx(b_amp, BLOCK) : 0;
    } else {
        n = t31_tx(modem_b.t31, b_amp, BLOCK);
    }
    if (n < BLOCK)
        memset(b_amp + n, 0, (BLOCK - n) * sizeof(int16_t));
    /* Until both ends are off hook, and once either hangs up, the line carries nothing. */
    if (modem_a.call != IN_CALL || !b_off_hook()) {
        memset(a_amp, 0, sizeof(a_amp));
        memset(b_amp, 0, sizeof(b_amp));
    } else {
        line_carry(&a_to_b, a_amp);
        line_carry(&b_to_a, b_amp);
    }
    if (opt.a_file) {
        if (term_a.running && !term_a.done)
            fax_rx(term_a.fax, b_amp, BLOCK);
        span_log_bump_samples(fax_get_logging_state(term_a.fax), BLOCK);
        span_log_bump_samples(t30_get_logging_state(fax_get_t30_state(term_a.fax)), BLOCK);
    } else {
        t31_rx(modem_a.t31, b_amp, BLOCK);
        span_log_bump_samples(t31_get_logging_state(modem_a.t31), BLOCK);
        span_log_bump_samples(&modem_a.t31->at_state.logging, BLOCK);
    }
    if (opt.terminal) {
        if (term.running && !term.done)
            fax_rx(term.fax, a_amp, BLOCK);
        span_log_bump_samples(fax_get_logging_state(term.fax), BLOCK);
        span_log_bump_samples(t30_get_logging_state(fax_get_t30_state(term.fax)), BLOCK);
    } else if (!opt.voice) {
        t31_rx(modem_b.t31, a_amp, BLOCK);
        span_log_bump_samples(t31_get_logging_state(modem_b.t31), BLOCK);
        span_log_bump_samples(&modem_b.t31->at_state.logging, BLOCK);
    }
    now += BLOCK;
}

static const char *finished(void)
{
    if (opt.terminal) {
        if (term.done && (modem_a.call == ENDED || modem_a.call == IDLE)
            && now - term.done_at > SAMPLE_RATE / 5)
            return "completed";
        if (term.done && now - term.done_at > 10 * SAMPLE_RATE)
            return "completed";
        if (opt.term_calls && !term.running && modem_a.rings >= opt.max_rings
            && modem_a.call == IDLE)
            return "no_answer";
        return NULL;
    }
    if (opt.voice) {
        if (opt.term_calls && voice.calls == 0 && modem_a.rings >= opt.max_rings
            && modem_a.call == IDLE)
            return "no_answer";
        return modem_a.call == ENDED ? "completed" : NULL;
    }
    if (modem_a.call == ENDED && modem_b.call == ENDED)
        return "completed";
    if (modem_a.call == ENDED && modem_b.call == IDLE && modem_b.rings >= opt.max_rings)
        return "no_answer";
    return NULL;
}

static void print_terminal(FILE *f, const char *name, const struct terminal *t, int sends,
                           int calls, const char *ident)
{
    const t30_stats_t *st = &t->stats;

    fprintf(f, ", \"%s\": {\"role\": \"%s\", \"calling\": %s, \"done\": %s", name,
            sends ? "send" : "receive", calls ? "true" : "false", t->done ? "true" : "false");
    if (t->done)
        fprintf(f, ", \"done_sim_seconds\": %.3f, \"done_wall_seconds\": %.3f",
                (double) t->done_at / SAMPLE_RATE, t->done_wall);
    fprintf(f, ", \"completion_code\": %d, \"completion\": ", t->completion);
    peer_json_string(f, t->completion >= 0 ? t30_completion_code_to_str(t->completion)
                                           : "not finished");
    fprintf(f, ", \"ok\": %s", t->completion == T30_ERR_OK ? "true" : "false");
    fprintf(f, ", \"pages_tx\": %d, \"pages_rx\": %d, \"bit_rate\": %d, \"ecm\": %s",
            st->pages_tx, st->pages_rx, st->bit_rate, st->error_correcting_mode ? "true" : "false");
    fprintf(f, ", \"x_resolution\": %d, \"y_resolution\": %d, \"width\": %d, \"length\": %d",
            st->x_resolution, st->y_resolution, st->width, st->length);
    fprintf(f, ", \"encoding\": %d, \"bad_rows\": %d, \"longest_bad_row_run\": %d",
            st->encoding, st->bad_rows, st->longest_bad_row_run);
    fprintf(f, ", \"ecm_retries\": %d, \"phase_b\": %d, \"phase_d\": %d",
            st->error_correcting_mode_retries, t->phase_b, t->phase_d);
    fprintf(f, ", \"remote_ident\": ");
    peer_json_string(f, t->remote_ident);
    fprintf(f, ", \"local_ident\": ");
    peer_json_string(f, ident);
    fprintf(f, "}");
}

static void print_result(const char *reason, double wall)
{
    FILE *f = stdout;

    fprintf(f, "RESULT {\"exit\": ");
    peer_json_string(f, reason);
    fprintf(f, ", \"sim_seconds\": %.3f, \"realtime_seconds\": %.3f, \"wall_seconds\": %.3f",
            sim_seconds(), (double) realtime_samples / SAMPLE_RATE, wall);
    if (dial_at >= 0)
        fprintf(f, ", \"dial_sim_seconds\": %.3f, \"dial_wall_seconds\": %.3f",
                (double) dial_at / SAMPLE_RATE, dial_wall);
    if (opt.terminal)
        print_terminal(f, "terminal", &term, opt.term_sends, opt.term_calls, opt.ident);
    if (opt.a_file)
        print_terminal(f, "terminal_a", &term_a, 1, 1, A_IDENT);
    fprintf(f, ", \"modem_a\": {\"state\": %d, \"rings\": %d}", modem_a.call, modem_a.rings);
    if (opt.voice)
        fprintf(f, ", \"voice\": {\"calls\": %d, \"answered_sim_seconds\": %.3f}",
                voice.calls, voice.calls ? (double) voice.answered_at / SAMPLE_RATE : 0.0);
    else if (!opt.terminal)
        fprintf(f, ", \"modem_b\": {\"state\": %d, \"rings\": %d}", modem_b.call, modem_b.rings);
    fprintf(f, "}\n");
    fflush(f);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: faxline [--peer terminal|modem|voice] [--send FILE | --receive FILE] [--calling]\n"
            "               [--a-send FILE]\n"
            "               [--ecm 0|1] [--ident ID] [--header TEXT] [--modems v27,v29,v17]\n"
            "               [--resolutions standard,fine,superfine] [--compressions mh,mr,mmr]\n"
            "               [--speed F] [--delay MS] [--noise DBM0] [--seed N] [--timeout S]\n"
            "               [--answer-delay MS] [--ring-interval MS] [--max-rings N]\n"
            "               [--linger S] [--log-level N] [--trace]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    static const char *const modem_names[] = {"v27", "v29", "v17", NULL};
    static const int modem_bits[] = {T30_SUPPORT_V27TER, T30_SUPPORT_V29, T30_SUPPORT_V17};
    static const struct option longopts[] = {
        {"peer", required_argument, NULL, 'p'},
        {"send", required_argument, NULL, 's'},
        {"receive", required_argument, NULL, 'r'},
        {"a-send", required_argument, NULL, 'A'},
        {"calling", no_argument, NULL, 'c'},
        {"ecm", required_argument, NULL, 'e'},
        {"ident", required_argument, NULL, 'i'},
        {"header", required_argument, NULL, 'H'},
        {"modems", required_argument, NULL, 'm'},
        {"resolutions", required_argument, NULL, 'R'},
        {"compressions", required_argument, NULL, 'C'},
        {"speed", required_argument, NULL, 'x'},
        {"delay", required_argument, NULL, 'd'},
        {"noise", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 'S'},
        {"timeout", required_argument, NULL, 't'},
        {"answer-delay", required_argument, NULL, 'a'},
        {"ring-interval", required_argument, NULL, 'I'},
        {"max-rings", required_argument, NULL, 'M'},
        {"log-level", required_argument, NULL, 'l'},
        {"trace", no_argument, NULL, 'T'},
        {"linger", required_argument, NULL, 'L'},
        {NULL, 0, NULL, 0},
    };
    int c;

    opt.terminal = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (strcmp(optarg, "terminal") == 0)
                opt.terminal = 1;
            else if (strcmp(optarg, "modem") == 0)
                opt.terminal = 0;
            else if (strcmp(optarg, "voice") == 0)
                opt.terminal = 0, opt.voice = 1;
            else
                usage();
            break;
        case 's':
            opt.term_sends = 1;
            opt.file = optarg;
            break;
        case 'r':
            opt.term_sends = 0;
            opt.file = optarg;
            break;
        case 'A': opt.a_file = optarg; break;
        case 'c': opt.term_calls = 1; break;
        case 'e': opt.ecm = atoi(optarg) != 0; break;
        case 'i': opt.ident = optarg; break;
        case 'H': opt.header = optarg; break;
        case 'm': opt.modems = peer_parse_list("faxline", optarg, modem_names, modem_bits); break;
        case 'R': opt.resolutions = peer_parse_list("faxline", optarg, peer_resolution_names,
                                                   peer_resolution_bits); break;
        case 'C': opt.compressions = peer_parse_list("faxline", optarg, peer_compression_names,
                                                    peer_compression_bits); break;
        case 'x': opt.speed = atof(optarg); break;
        case 'd': opt.delay_ms = atoi(optarg); break;
        case 'n': opt.noise_dbm0 = atof(optarg); opt.noise_on = 1; break;
        case 'S': opt.seed = atoi(optarg); break;
        case 't': opt.timeout = atof(optarg); break;
        case 'a': opt.answer_delay_ms = atoi(optarg); break;
        case 'I': opt.ring_ms = atoi(optarg); break;
        case 'M': opt.max_rings = atoi(optarg); break;
        case 'l': opt.log_level = atoi(optarg); break;
        case 'T': opt.trace = 1; break;
        case 'L': opt.linger = atof(optarg); break;
        default: usage();
        }
    }
    if (optind != argc || opt.speed < 0 || opt.delay_ms < 0 || opt.delay_ms > 2000
        || opt.timeout <= 0 || (opt.terminal && opt.file == NULL) || (opt.voice && opt.file)
        || (opt.a_file && (!opt.terminal || opt.term_sends || opt.term_calls)))
        usage();
}

static void on_signal(int sig)
{
    (void) sig;
    got_signal = 1;
}

int main(int argc, char **argv)
{
    struct pollfd fds[2];
    double start;
    double next;
    double t;
    double step;
    const char *reason = NULL;
    const char *done = NULL;
    double done_wall = 0.0;
    int nfds;
    int wait_ms;

    parse_args(argc, argv);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    modem_a.name = 'A';
    if (opt.a_file)
        init_terminal(&term_a, 1, 1, opt.a_file, A_IDENT);
    else
        init_modem(&modem_a, 'A');
    if (opt.terminal) {
        init_terminal(&term, opt.term_calls, opt.term_sends, opt.file, opt.ident);
    } else if (!opt.voice) {
        init_modem(&modem_b, 'B');
        modem_a.other = &modem_b;
        modem_b.other = &modem_a;
    }
    if (!opt.a_file)
        printf("PTY A %s\n", modem_a.path);
    if (modem_b.t31 != NULL)
        printf("PTY B %s\n", modem_b.path);
    printf("READY\n");
    fflush(stdout);

    start = peer_wall_now();
    start_wall = start;
    next = start;
    nfds = 0;
    if (!opt.a_file)
        fds[nfds++].fd = modem_a.master;
    if (modem_b.t31 != NULL)
        fds[nfds++].fd = modem_b.master;
    while (reason == NULL) {
        /* Real time while a DTE has the turn or after the call, else the speed factor
           (0 = unpaced). */
        if (done != NULL || dte_has_turn(&modem_a) || dte_has_turn(&modem_b) || opt.speed == 1.0) {
            step = (double) BLOCK / SAMPLE_RATE;
            realtime_samples += BLOCK;
        } else {
            step = opt.speed > 0 ? (double) BLOCK / SAMPLE_RATE / opt.speed : 0.0;
        }
        t = peer_wall_now();
        if (next < t - 0.1)
            next = t - 0.1;   /* do not run in a burst to catch up after a stall */
        next += step;
        do {
            wait_ms = (int) ((next - t) * 1000.0);
            if (wait_ms < 0)
                wait_ms = 0;
            for (int i = 0; i < nfds; i++) {
                fds[i].events = POLLIN;
                fds[i].revents = 0;
            }
            if (!opt.a_file && modem_a.out_len)
                fds[0].events |= POLLOUT;
            if (modem_b.t31 != NULL && modem_b.out_len)
                fds[nfds - 1].events |= POLLOUT;
            poll(fds, nfds, wait_ms);
            service_modem(&modem_a);
            service_modem(&modem_b);
            t = peer_wall_now();
            if (got_signal)
                break;
        } while (t < next);
        if (got_signal) {
            reason = "signal";
            break;
        }
        tick();
        service_modem(&modem_a);
        service_modem(&modem_b);
        if (t - start > opt.timeout) {
            reason = "timeout";
        } else if (done == NULL) {
            done = finished();
            done_wall = t;
        } else if (t - last_input_wall > opt.linger && t - done_wall > opt.linger) {
            /* Let the DTEs finish their own clean-up (ATH, reset) before the ports go. */
            reason = done;
        }
    }
    /* Give the DTEs a moment to take what is still queued for them. */
    for (int i = 0; i < 20 && (modem_a.out_len || modem_b.out_len); i++) {
        service_modem(&modem_a);
        service_modem(&modem_b);
        usleep(5000);
    }
    print_result(reason, peer_wall_now() - start);
    return 0;
}
