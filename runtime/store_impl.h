/* store_impl.h -- what the files of the store layer share (store.c,
 * store_tools.c): the SQLite handle. Nothing outside the store layer
 * includes it (tests/integration/style.sh); the unit tests may, to look at
 * rows directly. */
#ifndef RT_STORE_IMPL_H
#define RT_STORE_IMPL_H
#include "store.h"
#include <sqlite3.h>

/* The handle; borrowed. */
sqlite3 *rt_store_db(rt_store *s);
/* Records a failed SQLite result code for rt_store_errcode/errmsg and
 * returns its RT_E* code. */
int rt_store_sqlfail(rt_store *s, int rc);
#endif
