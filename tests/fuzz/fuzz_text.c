/* fuzz_text.c -- libFuzzer target: every text helper on arbitrary bytes
 * (customers' messages are outside input). Build: tests/fuzz/run. */
#include "rt.h"
#include "text.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A small vocabulary of the persona's kind: the intents and one named
 * class, with look-behind, alternatives and Cyrillic classes like the real
 * data (scripts/vitaly/lib/vocab.lua). Built once. */
static rt_text_vocab *vocab(void) {
  static rt_text_vocab *v;
  if (v) return v;
  v = rt_text_vocab_new();
  static const char *const words[][2] = {
    {"stop", "(?<!не )(?:стоп|хватит писать|отпишите)"},
    {"later", "через (?:неделю|месяц|\\d+ (?:дн|недел)\\w*)|позже"},
    {"declined", "не нужно|ничего не надо|машину продал\\w*"},
    {"need", "нужн\\w*|надо"},
    {"part", "колодк\\w*|фильтр\\w*|масл[оа]"},
    {"done", "(?:это )?вс[её]|хватит"},
    {"no", "нет|не"},
    {"yes", "да|ага|угу"},
    {"thanks", "спасибо|благодар\\w*"},
  };
  char *err = NULL;
  for (size_t i = 0; i < sizeof words / sizeof *words; i++)
    if (rt_text_vocab_add(v, words[i][0], words[i][1], &err) != RT_OK) abort();
  if (rt_text_vocab_model(v, "NZE141") != RT_OK || rt_text_vocab_build(v, &err) != RT_OK) abort();
  return v;
}

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
  rt_text_vocab_intents(vocab(), s);
  rt_text_vocab_intent(vocab(), s);
  rt_text_vocab_match(vocab(), s, "part");
  char plate[16];
  rt_text_plate(s, false, plate);
  bool cut;
  rt_text_head(s, size, 100, &cut);
  rt_text_date_opts o = RT_TEXT_DATE_OPTS_DEFAULT;
  rt_text_date_res r;
  rt_text_date(s, 1772434800, "Asia/Vladivostok", &o, &r);
  free(rt_text_norm(s));
  free(s);
  return 0;
}
