/* crash_on.c -- LD_PRELOAD shim for quarantine.sh: json_loads aborts the
 * process when the text it is given contains $CRASH_ON. The engine parses
 * an event's payload with json_loads when its turn starts, so a message
 * holding that text takes the bot down as a crashing step would. Only the
 * test loads this; the bot has no such hook. */
#include <dlfcn.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

json_t *json_loads(const char *input, size_t flags, json_error_t *error) {
  static json_t *(*real)(const char *, size_t, json_error_t *);
  const char *marker = getenv("CRASH_ON");
  if (input && marker && *marker && strstr(input, marker)) abort();
  if (!real) *(void **)&real = dlsym(RTLD_NEXT, "json_loads");
  return real(input, flags, error);
}
