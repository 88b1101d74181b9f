/* fuzz_import.c -- libFuzzer target: the CSV importer on arbitrary files
 * (shops' 1C exports are outside input). Build: tests/fuzz/run. */
#include "import.h"
#include "paths.h"
#include "store.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static rt_store *s;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!s) {
    char *sql = rt_paths_schema("sql"), *err = NULL;
    rt_store_opts o = {.sql_dir = sql, .sync_off = true};
    if (rt_store_open(":memory:", &o, &s, &err) != RT_OK) abort();
    free(sql);
  }
  char path[64];
  snprintf(path, sizeof path, "/tmp/fuzz_import.%d.csv", (int)getpid());
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, size, f);
  fclose(f);
  rt_import_report rep;
  char *err = NULL;
  rt_import_csv(s, path, 1772434800000LL, "Europe/Moscow", &rep, &err);
  free(err);
  unlink(path);
  return 0;
}
