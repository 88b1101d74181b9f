/* transcript.h -- `shopbot test`: plain-text conversations as tests.
 *
 * Each file runs against a fresh temporary store and a copy of the shop's
 * flows, with a virtual clock, captured channels and scripted HTTP
 * replies. The format is in docs/transcripts.md. */
#ifndef RT_TRANSCRIPT_H
#define RT_TRANSCRIPT_H
#include "rt.h"
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

/* What the scripted LLM was asked in one file (tokens as the runner
 * counts them: docs/transcripts.md). */
typedef struct {
  int64_t calls, photos, tokens_in, tokens_out;
} rt_transcript_llm;

typedef struct {
  rt_transcript_llm flows;     /* the calls the flows made */
  rt_transcript_llm all_llm;   /* all_llm: the runner's call for every customer message */
  int64_t ocr_calls, ocr_found;
  int64_t leads;               /* leads recorded */
  int64_t contacted;           /* campaign check-ins sent ("contacted" events) */
} rt_transcript_stats;

typedef struct {
  const char *shop_dir;
  bool verbose;         /* print the conversation as it runs */
  FILE *out;            /* per-file results */
  /* tests/bench/bench_tokens.c: every customer text and photo is also sent
   * to the LLM (as a shop without rules would: extract with the schema of
   * the chat's flow, retention_reply or parts_list, photo_triage with the
   * photo), by a second llm provider the flows do not see, so they answer
   * as before and the same transcripts pass; its calls are counted in
   * stats->all_llm. */
  bool all_llm;
  /* Answers for calls no llm: line scripts: schema name (or "chat") ->
   * the model's text. NULL: such calls fail as unscripted. Borrowed. */
  const struct json_t *llm_default;
  rt_transcript_stats *stats;   /* filled when not NULL */
} rt_transcript_opts;

/* Runs one transcript; returns 0 when it passed, 1 when it failed, and
 * RT_E* when it could not run at all (message printed). */
int rt_transcript_run(const rt_transcript_opts *o, const char *file);

/* The `bot:` / URL pattern match: `*` is any text (also none), every other
 * byte stands for itself, and the whole text must match. Linear in the
 * text for each star: at most O(strlen(pattern) * strlen(text)), no
 * recursion. (`bot:` lines normalise both sides first: rt_text_norm.) */
bool rt_transcript_glob(const char *pattern, const char *text);

/* ---- a shop's transcripts in a child process (tests.on_reload) ----
 *
 * The serving loop must never run transcripts itself: one slow file would
 * stop every chat and /healthz. A check starts the running binary
 * (uv_exepath) as `shopbot test SHOP_DIR TESTS_DIR`, reads its report from
 * a pipe and kills it (SIGKILL) when it runs longer than timeout_ms. */
typedef struct rt_transcript_check rt_transcript_check;

/* Called once, on the loop, unless the check was cancelled first:
 *   RT_OK       every transcript passed;
 *   RT_EINVAL   some failed: "N of M transcript tests fail on the new
 *               flows: FAIL file:line: ...";
 *   RT_ETIMEOUT the child ran out of time and was killed;
 *   RT_EIO      the child could not run (crashed, bad exit).
 * err (borrowed, NULL for RT_OK) is valid during the call only. */
typedef void (*rt_transcript_check_done)(void *ud, int rc, const char *err);

/* Starts a check. On failure returns RT_EIO with an owned *err and calls
 * nothing. The check frees itself after done (its handles close on the
 * loop afterwards, so run the loop before uv_loop_close). */
int rt_transcript_check_start(uv_loop_t *loop, const char *shop_dir, const char *tests_dir,
                              int64_t timeout_ms, rt_transcript_check_done done, void *ud,
                              rt_transcript_check **out, char **err);
/* Kills the child, drops its report (done is never called) and frees the
 * check once the child has been reaped; then closed(ud) (may be NULL). */
void rt_transcript_check_cancel(rt_transcript_check *c, void (*closed)(void *ud), void *ud);
#endif
