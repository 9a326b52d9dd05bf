/*
 * t30_peer - SpanDSP's own T.30 engine (t30.h), without modems or audio, driven line by
 * line over stdin/stdout so that a test can connect it to another T.30 engine through a
 * simulated line. See t30_peer.py for the driver.
 *
 *   t30_peer [--calling] [--send FILE | --receive FILE] [--ecm 0|1] [--ident ID]
 *            [--modems MASK] [--compressions MASK] [--resolutions MASK] [--rnr N]
 *
 * Commands (stdin), each answered by output lines and then a line ".":
 *   A          the call is up: t30_restart()
 *   T n        n samples (8000/s) of time passed: t30_timer_update()
 *   S          the transmit step in progress completed (T30_FRONT_END_SEND_STEP_COMPLETE)
 *   H hex      an HDLC frame with a good FCS; B hex: one with a bad FCS
 *   U / D      the carrier being received came up (trained) / dropped
 *   P hex      non-ECM data received (T.4 order: LSB first)
 *   G          pull the non-ECM data to send (after a TX line without HDLC)
 *   Q          quit; prints the statistics
 * Output lines:
 *   TX type rate arg hdlc / RX type rate arg hdlc   (set_tx_type / set_rx_type calls;
 *              type: T30_MODEM_*; arg: short_train, or the pause in ms for PAUSE)
 *   F hex      an HDLC frame to send (FCS excluded); "F" alone: no more frames
 *   P hex      non-ECM data to send (after G), then "PE"
 *   E code     phase E: the call ended with this T30_ERR_* code
 *   R json     statistics (after Q)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <getopt.h>

#define SPANDSP_EXPOSE_INTERNAL_STRUCTURES
#include <spandsp.h>

static t30_state_t *t30;
static int rx_hdlc;
static int rx_type;
static int ended = -1;

static void print_hex(const char *tag, const uint8_t *buf, int len)
{
    int i;
    printf("%s", tag);
    if (len > 0)
        printf(" ");
    for (i = 0; i < len; i++)
        printf("%02x", buf[i]);
    printf("\n");
}

static void send_hdlc(void *user_data, const uint8_t msg[], int len)
{
    (void) user_data;
    print_hex("F", msg, len > 0 ? len : 0);
}

static void set_tx_type(void *user_data, int type, int bit_rate, int short_train, int use_hdlc)
{
    (void) user_data;
    printf("TX %d %d %d %d\n", type, bit_rate, short_train, use_hdlc);
}

static void set_rx_type(void *user_data, int type, int bit_rate, int short_train, int use_hdlc)
{
    (void) user_data;
    rx_hdlc = use_hdlc;
    rx_type = type;
    printf("RX %d %d %d %d\n", type, bit_rate, short_train, use_hdlc);
}

static void phase_e(t30_state_t *s, void *user_data, int code)
{
    (void) s;
    (void) user_data;
    ended = code;
    printf("E %d\n", code);
}

static void log_to_stderr(int level, const char *text)
{
    (void) level;
    fputs(text, stderr);
}

static int unhex(const char *hex, uint8_t *out, int max)
{
    int n = 0;
    unsigned v;
    while (hex[0] && hex[1] && n < max && sscanf(hex, "%2x", &v) == 1) {
        out[n++] = (uint8_t) v;
        hex += 2;
    }
    return n;
}

static void json_str(const char *key, const char *value, int comma)
{
    const char *p;
    printf("\"%s\": \"", key);
    for (p = value ? value : ""; *p; p++)
        if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
            putchar(*p);
    printf("\"%s", comma ? ", " : "");
}

static void stats(void)
{
    t30_stats_t st;
    t30_get_transfer_statistics(t30, &st);
    printf("R {\"completion\": %d, \"pages_tx\": %d, \"pages_rx\": %d, \"bit_rate\": %d, "
           "\"ecm\": %d, \"x_resolution\": %d, \"y_resolution\": %d, \"width\": %d, "
           "\"length\": %d, \"encoding\": %d, \"bad_rows\": %d, \"longest_bad_row_run\": %d, "
           "\"ecm_retries\": %d, ",
           ended, st.pages_tx, st.pages_rx, st.bit_rate, st.error_correcting_mode,
           st.x_resolution, st.y_resolution, st.width, st.length, st.encoding, st.bad_rows,
           st.longest_bad_row_run, st.error_correcting_mode_retries);
    json_str("remote_ident", t30_get_rx_ident(t30), 0);
    printf("}\n");
}

int main(int argc, char **argv)
{
    static char line[8192];
    static uint8_t buf[4096];
    const char *send = NULL, *receive = NULL, *ident = "SPANDSP T30";
    int calling = 0, ecm = 1, rnr = 0, opt, n;
    int modems = T30_SUPPORT_V27TER | T30_SUPPORT_V29 | T30_SUPPORT_V17;
    int comp = T30_SUPPORT_T4_1D_COMPRESSION | T30_SUPPORT_T4_2D_COMPRESSION
             | T30_SUPPORT_T6_COMPRESSION;
    int res = T30_SUPPORT_STANDARD_RESOLUTION | T30_SUPPORT_FINE_RESOLUTION
            | T30_SUPPORT_SUPERFINE_RESOLUTION | T30_SUPPORT_R8_RESOLUTION;
    static const struct option longopts[] = {
        {"calling", no_argument, 0, 'c'}, {"send", required_argument, 0, 's'},
        {"receive", required_argument, 0, 'r'}, {"ecm", required_argument, 0, 'e'},
        {"ident", required_argument, 0, 'i'}, {"modems", required_argument, 0, 'm'},
        {"compressions", required_argument, 0, 'k'}, {"resolutions", required_argument, 0, 'x'},
        {"rnr", required_argument, 0, 'n'}, {0, 0, 0, 0}};

    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': calling = 1; break;
        case 's': send = optarg; break;
        case 'r': receive = optarg; break;
        case 'e': ecm = atoi(optarg); break;
        case 'i': ident = optarg; break;
        case 'm': modems = (int) strtol(optarg, NULL, 0); break;
        case 'k': comp = (int) strtol(optarg, NULL, 0); break;
        case 'x': res = (int) strtol(optarg, NULL, 0); break;
        case 'n': rnr = atoi(optarg); break;
        default: return 2;
        }
    }
    if ((send == NULL) == (receive == NULL)) {
        fprintf(stderr, "one of --send FILE or --receive FILE is needed\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    span_set_message_handler(log_to_stderr);
    t30 = t30_init(NULL, calling, set_rx_type, NULL, set_tx_type, NULL, send_hdlc, NULL);
    if (t30 == NULL)
        return 1;
    span_set_message_handler(log_to_stderr);
    span_log_set_message_handler(t30_get_logging_state(t30), log_to_stderr);
    span_log_set_level(t30_get_logging_state(t30),
                       SPAN_LOG_SHOW_SEVERITY | SPAN_LOG_SHOW_PROTOCOL | SPAN_LOG_FLOW);
    t30_set_tx_ident(t30, ident);
    t30_set_supported_modems(t30, modems);
    t30_set_supported_compressions(t30, comp);
    t30_set_supported_resolutions(t30, res);
    t30_set_supported_image_sizes(t30, T30_SUPPORT_215MM_WIDTH | T30_SUPPORT_255MM_WIDTH
                                  | T30_SUPPORT_303MM_WIDTH | T30_SUPPORT_UNLIMITED_LENGTH
                                  | T30_SUPPORT_A4_LENGTH | T30_SUPPORT_B4_LENGTH);
    t30_set_ecm_capability(t30, ecm);
    if (send)
        t30_set_tx_file(t30, send, -1, -1);
    else
        t30_set_rx_file(t30, receive, -1);
    t30_set_phase_e_handler(t30, phase_e, NULL);
    printf("READY\n.\n");
    fflush(stdout);

    while (fgets(line, sizeof(line), stdin)) {
        char *arg = line + 1;
        while (*arg == ' ')
            arg++;
        line[strcspn(line, "\r\n")] = 0;
        switch (line[0]) {
        case 'A':
            t30_restart(t30);
            if (rnr > 0)    /* after the restart, which clears it */
                t30_set_receiver_not_ready(t30, rnr);
            break;
        case 'T':
            t30_timer_update(t30, atoi(arg));
            break;
        case 'S':
            t30_front_end_status(t30, T30_FRONT_END_SEND_STEP_COMPLETE);
            break;
        case 'H':
        case 'B':
            n = unhex(arg, buf, sizeof(buf));
            t30_hdlc_accept(t30, buf, n, line[0] == 'H');
            break;
        case 'U':
            if (rx_hdlc) {
                t30_hdlc_accept(t30, NULL, rx_type == T30_MODEM_V21 ? SIG_STATUS_CARRIER_UP
                                                                    : SIG_STATUS_TRAINING_SUCCEEDED, 1);
                t30_hdlc_accept(t30, NULL, SIG_STATUS_FRAMING_OK, 1);
            } else {
                t30_non_ecm_put_bit(t30, SIG_STATUS_TRAINING_SUCCEEDED);
            }
            break;
        case 'D':
            if (rx_hdlc)
                t30_hdlc_accept(t30, NULL, SIG_STATUS_CARRIER_DOWN, 1);
            else
                t30_non_ecm_put_bit(t30, SIG_STATUS_CARRIER_DOWN);
            break;
        case 'P':
            n = unhex(arg, buf, sizeof(buf));
            t30_non_ecm_put_chunk(t30, buf, n);
            break;
        case 'G':
            for (;;) {
                n = t30_non_ecm_get_chunk(t30, buf, 1024);
                if (n > 0)
                    print_hex("P", buf, n);
                if (n < 1024)
                    break;
            }
            printf("PE\n");
            break;
        case 'Q':
            stats();
            printf(".\n");
            fflush(stdout);
            return 0;
        default:
            fprintf(stderr, "unknown command %s\n", line);
            break;
        }
        printf(".\n");
        fflush(stdout);
    }
    return 0;
}
