/* test_buf.c -- the growable buffer (buf.h). */
#include "buf.h"
#include "rt.h"
#include "t.h"
#include <stdlib.h>
#include <string.h>

T(empty_allocates_nothing) {
  rt_buf b = RT_BUF_INIT;
  CHECK(b.s == NULL);
  CHECK_STR(rt_buf_str(&b), "");
  rt_buf_add(&b, "x", 0);
  rt_buf_printf(&b, "%s", "");
  rt_buf_reset(&b);
  CHECK(b.s == NULL && b.len == 0);
  size_t n = 7;
  char *s = rt_buf_take(&b, &n);   /* a fresh "" even so */
  CHECK_STR(s, "");
  CHECK_INT(n, 0);
  free(s);
  rt_buf_free(&b);
}

T(add_printf_take) {
  rt_buf b = RT_BUF_INIT;
  rt_buf_adds(&b, "ab");
  rt_buf_addc(&b, 'c');
  rt_buf_add(&b, "d\0e", 3);        /* bytes, NUL included */
  CHECK_INT(b.len, 6);
  CHECK(memcmp(b.s, "abcd\0e", 7) == 0);
  rt_buf_reset(&b);
  CHECK_STR(rt_buf_str(&b), "");
  rt_buf_printf(&b, "%d-%s", 42, "x");
  CHECK_STR(b.s, "42-x");
  /* printf that does not fit in the room there is */
  char big[300];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  rt_buf_printf(&b, "[%s]", big);
  CHECK_INT(b.len, 4 + 2 + 299);
  CHECK(b.s[4] == '[' && b.s[b.len - 1] == ']' && b.s[b.len] == '\0');
  size_t n;
  char *s = rt_buf_take(&b, &n);
  CHECK_INT(n, 305);
  CHECK_INT(strlen(s), 305);
  CHECK(b.s == NULL && b.len == 0 && b.cap == 0);
  free(s);
}

T(grow_many) {
  rt_buf b = RT_BUF_INIT;
  for (int i = 0; i < 100000; i++) rt_buf_addc(&b, (char)('a' + i % 26));
  CHECK_INT(b.len, 100000);
  CHECK(b.cap > b.len && b.s[b.len] == '\0');
  CHECK(b.s[99999] == (char)('a' + 99999 % 26));
  rt_buf_consume(&b, 99990);
  CHECK_INT(b.len, 10);
  CHECK(b.s[0] == (char)('a' + 99990 % 26) && b.s[10] == '\0');
  rt_buf_consume(&b, 100);          /* more than held: empties */
  CHECK_INT(b.len, 0);
  CHECK_STR(rt_buf_str(&b), "");
  rt_buf_free(&b);
  CHECK(b.s == NULL);
}

T(reserve_commit) {
  rt_buf b = RT_BUF_INIT;
  char *o = rt_buf_reserve(&b, 10);
  memcpy(o, "0123456789", 10);
  rt_buf_commit(&b, 10);
  CHECK_STR(b.s, "0123456789");
  o = rt_buf_reserve(&b, 1000);
  CHECK(o == b.s + 10 && b.cap >= 1011);
  rt_buf_commit(&b, 0);
  CHECK_INT(b.len, 10);
  rt_buf_free(&b);
}

/* rt_buf_fill: a shop's text with {name} placeholders. Only the names
 * given are replaced; other braces, a lone brace and a format directive
 * are text. */
static char *fill(const char *tmpl) {
  static const char *const names[] = {"who", "why", "none"};
  const char *values[] = {"менеджер", "", NULL};
  rt_buf b = RT_BUF_INIT;
  rt_buf_fill(&b, tmpl, names, values, 3);
  return rt_buf_take(&b, NULL);
}

T(fill_placeholders) {
  char *s;
  CHECK_STR(s = fill("{who}: бот молчит"), "менеджер: бот молчит"); free(s);
  CHECK_STR(s = fill("новый{why}!"), "новый!"); free(s);
  CHECK_STR(s = fill("{who}{who}"), "менеджерменеджер"); free(s);
  CHECK_STR(s = fill("[{none}]"), "[]"); free(s);
  CHECK_STR(s = fill("{other} {who"), "{other} {who"); free(s);
  CHECK_STR(s = fill("{{who}}"), "{менеджер}"); free(s);
  CHECK_STR(s = fill("100%s {} } {"), "100%s {} } {"); free(s);
  CHECK_STR(s = fill(""), ""); free(s);
}

/* rt_i64_to writes what "%lld" writes, both ends of the range included. */
T(i64_decimal) {
  const int64_t vs[] = {0, 7, -1, 10, -10, 1234567890123LL, INT64_MAX, INT64_MIN, INT64_MIN + 1};
  for (size_t i = 0; i < sizeof vs / sizeof *vs; i++) {
    char got[22], want[32];
    got[rt_i64_to(got, vs[i])] = '\0';
    snprintf(want, sizeof want, "%lld", (long long)vs[i]);
    CHECK_STR(got, want);
  }
  rt_buf b = RT_BUF_INIT;
  rt_buf_adds(&b, "{\"at\":");
  rt_buf_add_i64(&b, -42);
  CHECK_STR(rt_buf_str(&b), "{\"at\":-42");
  rt_buf_free(&b);
}

int main(void) {
  T_RUN(empty_allocates_nothing);
  T_RUN(add_printf_take);
  T_RUN(grow_many);
  T_RUN(reserve_commit);
  T_RUN(fill_placeholders);
  T_RUN(i64_decimal);
  return T_DONE();
}
