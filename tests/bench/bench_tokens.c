/* bench_tokens.c -- tokens and cost per completed lead and per retention
 * dialog on the example shop's transcripts, rules and OCR first (as the
 * Vitaly flows are) against everything sent to the LLM.
 *   bench_tokens [SHOP_DIR]      (default: examples/autoparts)
 * Runs every .chat file of the shop's tests folder twice through the transcript runner
 * (tools/transcript.h), with the scripted LLM (docs/transcripts.md):
 *   rules first: the flows call the LLM only where rules and OCR are not
 *     sure (the llm: lines of the photo and retention transcripts);
 *   all-LLM: every customer text and photo also goes to the model, as a
 *     shop without rules would send it (all_llm: extract with the schema
 *     of the chat's flow, the photo with it); only those calls are counted.
 * Both runs must pass the same transcripts: the flows answer the same way.
 * Tokens are the runner's estimate of the real requests (bytes of the sent
 * messages and schema / 4, 85 a photo; the answer's bytes / 4). A file with
 * campaign check-ins is retention dialogs (tokens / check-ins); any other
 * counts per completed lead (its tokens / its leads, dialogs that ended
 * without a lead included). Prints figures; fails only when a transcript
 * fails. */
#include "transcript.h"
#include "log.h"
#include "rt.h"
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* gpt-4o-mini's price ($0.15 / $0.60 per 1M tokens) at 93 ₽ to the dollar,
 * per 1000 tokens: plugins/llm/README.md's example. */
#define PRICE_PROMPT 0.014
#define PRICE_COMPLETION 0.056

typedef struct {
  int64_t tokens_in, tokens_out, calls, photos;
  int64_t leads, dialogs;
  int passed, failed;
} group;

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static double cost(const group *g) {
  return ((double)g->tokens_in * PRICE_PROMPT + (double)g->tokens_out * PRICE_COMPLETION) / 1000.0;
}

static void run(const char *shop, char **files, size_t n, bool all, const json_t *answers,
                group *lead, group *ret) {
  for (size_t i = 0; i < n; i++) {
    rt_transcript_stats st;
    memset(&st, 0, sizeof st);
    char *report = NULL;
    size_t rlen = 0;
    FILE *sink = open_memstream(&report, &rlen);
    rt_transcript_opts o = {.shop_dir = shop, .out = sink, .all_llm = all,
                            .llm_default = answers, .stats = &st};
    int rc = rt_transcript_run(&o, files[i]);
    fclose(sink);
    if (rc != 0) fprintf(stderr, "%s: %s", all ? "all-llm" : "rules-first", report);
    free(report);
    const rt_transcript_llm *u = all ? &st.all_llm : &st.flows;
    group *g = st.contacted > 0 ? ret : lead;
    g->tokens_in += u->tokens_in;
    g->tokens_out += u->tokens_out;
    g->calls += u->calls;
    g->photos += u->photos;
    g->leads += st.leads;
    g->dialogs += st.contacted;
    if (rc == 0) g->passed++;
    else g->failed++;
  }
}

static void line(const char *what, const char *mode, const group *g, int64_t per) {
  double n = per > 0 ? (double)per : 1;
  printf("tokens.%s.%s: %.0f tokens (%.0f prompt + %.0f completion), %.4f ₽, %.2f calls per %s "
         "(%lld %ss, %d/%d transcripts pass)\n",
         what, mode, (double)(g->tokens_in + g->tokens_out) / n, (double)g->tokens_in / n,
         (double)g->tokens_out / n, cost(g) / n, (double)g->calls / n,
         strcmp(what, "lead") == 0 ? "lead" : "dialog", (long long)per,
         strcmp(what, "lead") == 0 ? "lead" : "dialog", g->passed, g->passed + g->failed);
}

int main(int argc, char **argv) {
  rt_log_set_level(RT_LOG_ERROR);
  const char *src = getenv("RT_SOURCE_DIR") ? getenv("RT_SOURCE_DIR") : RT_SOURCE_DIR;
  char *shop = argc > 1 ? rt_xstrdup(argv[1]) : rt_xasprintf("%s/examples/autoparts", src);
  char *dir = rt_xasprintf("%s/tests", shop);
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "bench_tokens: no %s\n", dir);
    return 2;
  }
  char **files = NULL;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (l < 6 || strcmp(de->d_name + l - 5, ".chat") != 0) continue;
    files = rt_xrealloc(files, (n + 1) * sizeof *files);
    files[n++] = rt_xasprintf("%s/%s", dir, de->d_name);
  }
  closedir(d);
  qsort(files, n, sizeof *files, by_name);
  /* What the model answers the all-LLM calls: short, valid answers of the
   * sizes a model gives (the flows do not use them). */
  json_t *answers = json_pack(
      "{s:s, s:s, s:s}", "parts_list", "{\"parts\": [\"колодки тормозные передние\"]}",
      "retention_reply", "{\"intent\": \"need\", \"when\": null, \"parts\": []}",
      "photo_triage",
      "{\"kind\": \"document\", \"vin\": \"XW8ZZZ61ZKG000000\", \"part_name\": null, \"confidence\": 0.9}");
  group lead_r = {0}, ret_r = {0}, lead_a = {0}, ret_a = {0};
  run(shop, files, n, false, answers, &lead_r, &ret_r);
  run(shop, files, n, true, answers, &lead_a, &ret_a);
  printf("# %zu transcripts of %s; tokens estimated from the requests (bytes/4, 85 a photo); "
         "prices %.3f/%.3f ₽ per 1k prompt/completion tokens\n", n, shop, PRICE_PROMPT, PRICE_COMPLETION);
  line("lead", "rules_first", &lead_r, lead_r.leads);
  line("lead", "all_llm", &lead_a, lead_a.leads);
  line("retention", "rules_first", &ret_r, ret_r.dialogs);
  line("retention", "all_llm", &ret_a, ret_a.dialogs);
  double lr = lead_r.leads ? (double)(lead_r.tokens_in + lead_r.tokens_out) / (double)lead_r.leads : 0;
  double la = lead_a.leads ? (double)(lead_a.tokens_in + lead_a.tokens_out) / (double)lead_a.leads : 0;
  double rr = ret_r.dialogs ? (double)(ret_r.tokens_in + ret_r.tokens_out) / (double)ret_r.dialogs : 0;
  double ra = ret_a.dialogs ? (double)(ret_a.tokens_in + ret_a.tokens_out) / (double)ret_a.dialogs : 0;
  printf("tokens.cut.lead: %.1f %% (goal >= 80 %%)\n", la > 0 ? 100.0 * (1 - lr / la) : 0);
  printf("tokens.cut.retention: %.1f %%\n", ra > 0 ? 100.0 * (1 - rr / ra) : 0);
  int failed = lead_r.failed + ret_r.failed + lead_a.failed + ret_a.failed;
  for (size_t i = 0; i < n; i++) free(files[i]);
  free(files);
  free(dir);
  free(shop);
  json_decref(answers);
  return failed ? 1 : 0;
}
