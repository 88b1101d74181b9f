/* t.h -- the smallest test harness that does the job.
 *
 * A test file defines tests with T(name) { ... } and lists them in main via
 * T_RUN(name). CHECK records a failure and goes on; the summary line
 * "N passed, N failed" is what ctest and CI read, and the exit code is
 * non-zero when anything failed. */
#ifndef RT_T_H
#define RT_T_H
#include <stdio.h>
#include <string.h>

static int t_checks_failed, t_tests_passed, t_tests_failed, t_cur_failed;

#define T(name) static void test_##name(void)
#define T_RUN(name) do {                                               \
    t_cur_failed = 0;                                                  \
    test_##name();                                                     \
    if (t_cur_failed) { t_tests_failed++;                              \
      fprintf(stderr, "FAIL %s\n", #name); }                           \
    else { t_tests_passed++; fprintf(stderr, "ok   %s\n", #name); }    \
  } while (0)
#define CHECK(cond) do { if (!(cond)) { t_checks_failed++; t_cur_failed++;  \
    fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); } \
  } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b);          \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) { t_checks_failed++; t_cur_failed++; \
      fprintf(stderr, "  %s:%d: %s == \"%s\", want \"%s\"\n", __FILE__, \
              __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); }   \
  } while (0)
#define CHECK_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) { t_checks_failed++; t_cur_failed++;                  \
      fprintf(stderr, "  %s:%d: %s == %lld, want %lld\n", __FILE__,      \
              __LINE__, #a, a_, b_); }                                  \
  } while (0)
#define T_DONE() (printf("%d passed, %d failed\n", t_tests_passed,      \
                         t_tests_failed), t_tests_failed ? 1 : 0)
#endif
