/*
 * peer_common.h - what the C test peers (faxline.c, t38peer.c) share: the wall clock,
 * JSON strings, comma-separated option lists, SpanDSP log set-up, and the set-up of a
 * SpanDSP T.30 terminal's TIFF file, identity and capabilities.
 *
 * Header only (static functions): each peer stays one translation unit, built by
 * tests/peers/peer_process.py:build_program (whose cache key covers this file).
 */
#ifndef FASTFAX_PEER_COMMON_H
#define FASTFAX_PEER_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <spandsp.h>

/* Names the --resolutions and --compressions options take, and their T30_SUPPORT_* bits
   (R8 comes with every resolution: SpanDSP's inch-based and metric ones are one choice). */
static const char *const peer_resolution_names[] = {"standard", "fine", "superfine", NULL};
static const int peer_resolution_bits[] = {
    T30_SUPPORT_STANDARD_RESOLUTION | T30_SUPPORT_R8_RESOLUTION,
    T30_SUPPORT_FINE_RESOLUTION | T30_SUPPORT_R8_RESOLUTION,
    T30_SUPPORT_SUPERFINE_RESOLUTION | T30_SUPPORT_R8_RESOLUTION,
};
static const char *const peer_compression_names[] = {"mh", "mr", "mmr", NULL};
static const int peer_compression_bits[] = {
    T30_SUPPORT_T4_1D_COMPRESSION, T30_SUPPORT_T4_2D_COMPRESSION, T30_SUPPORT_T6_COMPRESSION,
};

/* Monotonic wall-clock seconds. */
static double peer_wall_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Write s as a JSON string (ASCII; other bytes as \u00XX). */
static void peer_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7F)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* The OR of bits[i] over the comma-separated names[i] in arg; an unknown name ends the
   program (exit 2) with a message naming prog. */
static int peer_parse_list(const char *prog, const char *arg, const char *const names[],
                           const int bits[])
{
    char *copy = strdup(arg);
    char *save = NULL;
    char *tok;
    int value = 0;
    int i;

    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        for (i = 0; names[i]; i++) {
            if (strcmp(tok, names[i]) == 0)
                break;
        }
        if (!names[i]) {
            fprintf(stderr, "%s: unknown value '%s'\n", prog, tok);
            exit(2);
        }
        value |= bits[i];
    }
    free(copy);
    return value;
}

/* Log at level (SpanDSP's 0-10; below 0 is 0) with the tag and sample time on each line.
   SpanDSP keeps the tag's pointer: it must outlive the log. */
static void peer_set_log(logging_state_t *log, int level, const char *tag)
{
    span_log_set_level(log, (level < 0 ? 0 : level) | SPAN_LOG_SHOW_TAG
                                | SPAN_LOG_SHOW_SAMPLE_TIME);
    span_log_set_tag(log, tag);
}

/* A T.30 terminal that sends the TIFF-F file (sends) or receives into it, with this
   identity (TSI/CSI), ECM offered or not, these T30_SUPPORT_* resolutions and
   compressions, and its log at level under tag. */
static void peer_setup_t30(t30_state_t *t30, int sends, const char *file, const char *ident,
                           int ecm, int resolutions, int compressions, int level,
                           const char *tag)
{
    t30_set_tx_ident(t30, ident);
    if (sends)
        t30_set_tx_file(t30, file, -1, -1);
    else
        t30_set_rx_file(t30, file, -1);
    t30_set_ecm_capability(t30, ecm);
    t30_set_supported_resolutions(t30, resolutions);
    t30_set_supported_compressions(t30, compressions);
    peer_set_log(t30_get_logging_state(t30), level, tag);
}

#endif
