/* record.h -- a record the store hands to its reader field by field.
 *
 * c:customer() used to go row -> jansson tree -> Lua table, two copies and
 * an allocation per field; now the store calls a sink while its row is
 * live and the Lua host sets the table's fields straight from the columns
 * (tests/bench/bench_retention). The values are only valid inside the call.
 * A leaf header: the store and the Lua host both include it, neither
 * includes the other. */
#ifndef RT_RECORD_H
#define RT_RECORD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { RT_RV_INT, RT_RV_REAL, RT_RV_TEXT, RT_RV_BOOL } rt_rv_type;

typedef struct {
  rt_rv_type type;
  int64_t i;                 /* RT_RV_INT; RT_RV_BOOL as 0/1 */
  double d;                  /* RT_RV_REAL */
  const char *s;             /* RT_RV_TEXT, s[len] == 0 */
  size_t len;
} rt_rv;

typedef struct {
  /* A field that has a value (NULL columns are left out). */
  void (*field)(void *ud, const char *name, const rt_rv *v);
  /* One entry of a named map inside the record (the customer's
   * addresses: channel -> address); a map is announced by map_begin. */
  void (*map_begin)(void *ud, const char *name);
  void (*map_entry)(void *ud, const char *key, const char *value);
  void *ud;
} rt_record_sink;
#endif
