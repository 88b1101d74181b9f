/* fuzz_tgupd.c -- libFuzzer target: the getUpdates reader (plugins/telegram/
 * tgupd.c), which takes Telegram's answers instead of jansson for private
 * text messages. Beyond no crash, leak or UB:
 * - an answer it reads, jansson reads too (it never accepts more);
 * - every field it takes is what jansson's tree holds there (the same
 *   integers, the same strings, absent where jansson has no string), and an
 *   update it calls a private text message is one for telegram.c;
 * - the loose reader (an answer jansson refuses whole): on an answer
 *   jansson reads it finds the same updates, each one's bytes the update
 *   and its id jansson's; the repair leaves text jansson reads as it is;
 *   rt_tgupd_whole accepts only what jansson reads.
 * Build and run: tests/fuzz/run. */
#include "telegram/tgupd.h"
#include "buf.h"
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void same_str(const char *ours, const json_t *o, const char *k) {
  const char *theirs = json_string_value(json_object_get(o, k));
  if ((ours == NULL) != (theirs == NULL) || (ours && strcmp(ours, theirs) != 0)) {
    fprintf(stderr, "field %s: ours \"%s\", jansson's \"%s\"\n", k, ours ? ours : "(none)",
            theirs ? theirs : "(none)");
    abort();
  }
}

static void same_int(bool has, int64_t ours, const json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  if (has != json_is_integer(v) || (has && ours != json_integer_value(v))) {
    fprintf(stderr, "field %s differs\n", k);
    abort();
  }
}

static void loose(const char *s, size_t n) {
  json_t *any = json_loadb(s, n, JSON_DECODE_ANY, NULL);
  if (rt_tgupd_whole(s, n) && !any) {
    fprintf(stderr, "whole here, refused by jansson\n");
    abort();
  }
  rt_buf b = RT_BUF_INIT;
  size_t fixed = rt_tgupd_repair(s, n, &b);
  if (any && (fixed || b.len != n || (n && memcmp(b.s, s, n) != 0))) {
    fprintf(stderr, "repair changed what jansson reads\n");
    abort();
  }
  rt_buf_free(&b);
  int64_t id;
  rt_tgupd_first_id(s, n, &id);
  rt_tgupd_id(s, n, &id);
  rt_tgupd_span *sp;
  size_t cnt;
  if (rt_tgupd_split(s, n, &sp, &cnt) == 0) free(sp);
  /* On jansson's own writing of what it read (no key twice, none escaped),
   * the split finds exactly jansson's updates. */
  json_t *res = json_object_get(any, "result");
  if (json_is_object(any) && json_is_true(json_object_get(any, "ok")) && json_is_array(res)) {
    char *d = json_dumps(any, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t dn = strlen(d);
    if (rt_tgupd_split(d, dn, &sp, &cnt) != 0 || cnt != json_array_size(res)) {
      fprintf(stderr, "split refused jansson's answer, or found another count\n");
      abort();
    }
    for (size_t i = 0; i < cnt; i++) {
      json_t *j = json_array_get(res, i);
      json_t *alone = json_loadb(sp[i].start, sp[i].len, JSON_DECODE_ANY, NULL);
      if (!alone || !json_equal(alone, j)) abort();   /* its bytes are the update */
      json_decref(alone);
      json_t *uid = json_object_get(j, "update_id");
      bool has = rt_tgupd_id(sp[i].start, sp[i].len, &id);
      if (has != json_is_integer(uid) || (has && id != json_integer_value(uid))) {
        fprintf(stderr, "update %zu: another update_id\n", i);
        abort();
      }
    }
    free(sp);
    free(d);
  }
  json_decref(any);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  loose((const char *)data, size);
  rt_tgupd_batch b = {0};
  if (rt_tgupd_read((const char *)data, size, &b) != 0) return 0;
  json_t *doc = json_loadb((const char *)data, size, 0, NULL);
  if (!doc) {
    fprintf(stderr, "read here, refused by jansson\n");
    abort();
  }
  json_t *res = json_object_get(doc, "result");
  if (!json_is_true(json_object_get(doc, "ok")) || !json_is_array(res) ||
      json_array_size(res) != b.n)
    abort();
  for (size_t i = 0; i < b.n; i++) {
    const rt_tgupd *u = &b.u[i];
    json_t *j = json_array_get(res, i);
    same_int(u->has_id, u->update_id, j, "update_id");
    json_t *alone = json_loadb(u->start, u->len, JSON_DECODE_ANY, NULL);
    if (!alone || !json_equal(alone, j)) abort();   /* its bytes are the update */
    json_decref(alone);
    if (!u->fast) continue;
    json_t *m = json_object_get(j, "message"), *chat = json_object_get(m, "chat"),
           *from = json_object_get(m, "from");
    if (!json_is_object(from) || json_is_true(json_object_get(from, "is_bot"))) abort();
    same_str("private", chat, "type");
    same_int(true, u->chat_id, chat, "id");
    same_int(u->has_from_id, u->from_id, from, "id");
    same_int(u->has_message_id, u->message_id, m, "message_id");
    same_str(u->text, m, "text");
    same_str(u->media_group_id, m, "media_group_id");
    same_str(u->first_name, from, "first_name");
    same_str(u->last_name, from, "last_name");
    same_str(u->username, from, "username");
  }
  json_decref(doc);
  rt_tgupd_free(&b);
  return 0;
}
