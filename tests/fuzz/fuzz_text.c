/* fuzz_text.c -- libFuzzer target: every text helper on arbitrary bytes
 * (customers' messages are outside input). Build: tests/fuzz/run. */
#include "text.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  memcpy(s, data, size);
  s[size] = '\0';
  rt_text_car cars[8];
  rt_text_cars(s, cars, 8);
  char vin[18], frame[32], phone[20];
  rt_text_vin(s, vin);
  rt_text_frame(s, frame);
  rt_text_phone(s, phone);
  rt_text_phone_norm(s, phone);
  rt_text_intents(s);
  rt_text_date_opts o = RT_TEXT_DATE_OPTS_DEFAULT;
  rt_text_date_res r;
  rt_text_date(s, 1772434800, "Asia/Vladivostok", &o, &r);
  free(rt_text_norm(s));
  free(s);
  return 0;
}
