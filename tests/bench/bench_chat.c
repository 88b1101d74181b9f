/* bench_chat.c -- reply latency as a user of `shopbot chat` feels it
 * (prints, never asserts).
 *
 *   bench_chat SHOPBOT SHOP_DIR [--lines N]
 *
 * Starts `SHOPBOT chat SHOP_DIR` with pipes on stdin and stdout and writes
 * one line at a time, waiting for its reply before the next, N lines in all
 * (default 1,000). The dialogue is tests/bench/shop's lead flow in cycles of
 * ten: a greeting, a VIN, seven parts, "нет" (the summary); every line gets
 * exactly one message back. A reply's time runs from the write() of the line
 * to the end of the reply's first line read back; the continuation lines of
 * a message (indented) come in the same write and are drained before the
 * next line. The store is the shop's, synchronous as its shop.json says, so
 * each reply waits for the receive and the apply commit: the tail is mostly
 * fsync stalls of the disk. Prints p50, p90, p99, max and mean in ms. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p) {
  int i = (int)(p * (n - 1) + 0.5);
  return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* Reads from fd until buf holds a complete line that is not a continuation
 * (does not start with a space), or the timeout. Returns 1, 0 on timeout or
 * end of output. */
static char rbuf[1 << 16];
static size_t rlen;

static int wait_reply(int fd, int timeout_ms) {
  double t0 = now_ms();
  for (;;) {
    /* a reply line: starts at a line start, not indented, and ends in \n */
    size_t start = 0;
    for (size_t i = 0; i < rlen; i++) {
      if (rbuf[i] != '\n') continue;
      if (rbuf[start] != ' ') {
        memmove(rbuf, rbuf + i + 1, rlen - i - 1);
        rlen -= i + 1;
        return 1;
      }
      start = i + 1;
    }
    if (start > 0) {   /* only continuation lines so far: drop them */
      memmove(rbuf, rbuf + start, rlen - start);
      rlen -= start;
    }
    int left = timeout_ms - (int)(now_ms() - t0);
    if (left <= 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    if (rlen == sizeof rbuf) rlen = 0;
    ssize_t n = read(fd, rbuf + rlen, sizeof rbuf - rlen);
    if (n <= 0) return 0;
    rlen += (size_t)n;
  }
}

/* Drops the continuation lines of the last reply that are already here. */
static void drain(int fd) {
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) break;
    if (rlen == sizeof rbuf) rlen = 0;
    ssize_t n = read(fd, rbuf + rlen, sizeof rbuf - rlen);
    if (n <= 0) break;
    rlen += (size_t)n;
  }
  size_t k = 0;
  while (k < rlen && rbuf[k] == ' ') {
    char *nl = memchr(rbuf + k, '\n', rlen - k);
    if (!nl) break;
    k = (size_t)(nl - rbuf) + 1;
  }
  memmove(rbuf, rbuf + k, rlen - k);
  rlen -= k;
}

int main(int argc, char **argv) {
  int lines = 1000;
  if (argc < 3) {
    fprintf(stderr, "usage: bench_chat SHOPBOT SHOP_DIR [--lines N]\n");
    return 2;
  }
  for (int i = 3; i < argc; i++) {
    if (strcmp(argv[i], "--lines") == 0 && i + 1 < argc) lines = atoi(argv[++i]);
    else { fprintf(stderr, "bench_chat: unknown option %s\n", argv[i]); return 2; }
  }
  if (lines < 1) lines = 1;
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) { perror("pipe"); return 1; }
  signal(SIGPIPE, SIG_IGN);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); return 1; }
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]); close(in[1]); close(out[0]); close(out[1]);
    execl(argv[1], argv[1], "chat", argv[2], "--user", "bench", (char *)NULL);
    perror(argv[1]);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  static const char *cycle[10] = {"привет", "XW8ZZZ61ZBG012345", "фильтр масляный",
                                  "колодки передние", "свечи", "ремень ГРМ", "помпа",
                                  "датчик кислорода", "стойки стабилизатора", "нет"};
  double *lat = calloc((size_t)lines, sizeof *lat);
  int got = 0;
  double sum = 0;
  for (int i = 0; i < lines; i++) {
    char line[128];
    int n = snprintf(line, sizeof line, "%s\n", cycle[i % 10]);
    drain(out[0]);
    double t0 = now_ms();
    if (write(in[1], line, (size_t)n) != n) { perror("write"); break; }
    if (!wait_reply(out[0], 10000)) {
      fprintf(stderr, "bench_chat: no reply to line %d (%s)\n", i + 1, cycle[i % 10]);
      break;
    }
    lat[got] = now_ms() - t0;
    sum += lat[got++];
  }
  close(in[1]);
  int st = 0;
  waitpid(pid, &st, 0);
  if (got == 0) return 1;
  qsort(lat, (size_t)got, sizeof *lat, cmp_d);
  printf("chat.reply_p50_ms: %.2f ms (%d lines over shopbot chat in a pipe)\n", pct(lat, got, 0.5),
         got);
  printf("chat.reply_p90_ms: %.2f ms\n", pct(lat, got, 0.9));
  printf("chat.reply_p99_ms: %.2f ms\n", pct(lat, got, 0.99));
  printf("chat.reply_max_ms: %.2f ms\n", lat[got - 1]);
  printf("chat.reply_mean_ms: %.2f ms\n", sum / got);
  free(lat);
  return got == lines ? 0 : 1;
}
