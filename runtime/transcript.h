/* transcript.h -- `shopbot test`: plain-text conversations as tests.
 *
 * Each file runs against a fresh temporary store and a copy of the shop's
 * flows, with a virtual clock, captured channels and scripted HTTP
 * replies. The format is in docs/transcripts.md. */
#ifndef RT_TRANSCRIPT_H
#define RT_TRANSCRIPT_H
#include "rt.h"
#include <stdio.h>

typedef struct {
  const char *shop_dir;
  bool verbose;         /* print the conversation as it runs */
  FILE *out;            /* per-file results */
} rt_transcript_opts;

/* Runs one transcript; returns 0 when it passed, 1 when it failed, and
 * RT_E* when it could not run at all (message printed). */
int rt_transcript_run(const rt_transcript_opts *o, const char *file);
#endif
