/* rt.h -- the few things every runtime file shares: error codes and the
 * allocation helpers that never return NULL. Kept small on purpose; each
 * subsystem has its own header. */
#ifndef RT_H
#define RT_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum {
  RT_OK = 0,
  RT_EINVAL = -1,    /* bad input: config, script, arguments */
  RT_EIO = -2,       /* disk or store failure */
  RT_ENOENT = -3,    /* file or record missing */
  RT_EBUSY = -4,     /* another process holds the shop */
  RT_ELIMIT = -5,    /* a budget ran out: instructions, memory, size */
  RT_ESCRIPT = -6,   /* a flow raised an error */
  RT_ETIMEOUT = -7,
  RT_ENET = -8,
  RT_EFULL = -9,     /* disk full */
  RT_EROFS = -10,    /* store not writable */
};

/* Allocation in host code does not fail: on OOM we log and abort, as tmux's
 * xmalloc does. Only the Lua allocator and request bodies are fallible. */
void *rt_xmalloc(size_t n);
void *rt_xcalloc(size_t n, size_t m);
void *rt_xrealloc(void *p, size_t n);
char *rt_xstrdup(const char *s);
char *rt_xstrndup(const char *s, size_t n);
/* a, sep, b in a new string the caller frees (a key of two parts: printf
 * costs ten times more, and keys are made on every event). */
char *rt_xjoin(const char *a, char sep, const char *b);
/* printf into a new string the caller frees. */
char *rt_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Hand the allocator's free pages back to the system (the idle trim, and
 * after start-up): mimalloc's collect in release builds, glibc's
 * malloc_trim under the sanitizers. */
void rt_alloc_trim(void);

#define RT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
