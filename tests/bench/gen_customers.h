/* gen_customers.h -- the generated 1C-style customer export shared by the
 * benches that need a shop's worth of customers (bench_import,
 * bench_retention). Static: each bench includes it once. */
#ifndef RT_BENCH_GEN_CUSTOMERS_H
#define RT_BENCH_GEN_CUSTOMERS_H
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static uint64_t rng = 88172645463325252ULL;
static uint64_t xs(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Writes n customers; phones are a permutation of 9-digit numbers so the
 * keys arrive in random order, as from a real export. */
static int gen_csv(const char *path, long n, int64_t now_ms) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  static char buf[1 << 20];
  setvbuf(f, buf, _IOFBF, sizeof buf);
  fputs("\xEF\xBB\xBFТелефон;ФИО;Дата последней покупки;Бонусы;Telegram;Часовой пояс;Автомобиль\r\n", f);
  static const char *names[] = {"Иванов Иван", "Петрова Анна", "Сидоров Пётр", "Кузнецова Ольга",
                                "Смирнов Алексей", "Попова Мария", "Волков Дмитрий", "Зайцева Елена"};
  static const char *zones[] = {"", "", "", "", "", "", "Asia/Yekaterinburg", "Asia/Novosibirsk",
                                "Asia/Vladivostok", "Europe/Samara"};
  static const char *cars[] = {"Toyota Camry", "Kia Rio", "Lada Vesta", "VW Polo", "Hyundai Solaris",
                               "XW8ZZZ61ZBG012345", "GX110-6012345", ""};
  time_t base = (time_t)(now_ms / 1000);
  for (long i = 0; i < n; i++) {
    uint64_t r = xs();
    long num = (long)(((uint64_t)i * 387420489ULL + 12345) % 1000000000ULL);
    time_t t = base - (time_t)(r % (365 * 86400ULL));
    struct tm tm;
    gmtime_r(&t, &tm);
    char tg[24] = "";
    if ((r >> 50 & 3) == 0) snprintf(tg, sizeof tg, "%ld", 100000000L + i);  /* a quarter */
    fprintf(f, "+7 9%02ld %03ld-%02ld-%02ld;%s %ld;%02d.%02d.%04d;%ld %03ld,%02ld;%s;%s;%s\r\n",
            num / 10000000, num / 10000 % 1000, num / 100 % 100, num % 100,
            names[r >> 8 & 7], i, tm.tm_mday, tm.tm_mon + 1, tm.tm_year + 1900,
            (long)(r >> 20 & 7), (long)((r >> 24) % 1000), (long)((r >> 40) % 100),
            tg, zones[(r >> 52) % 10], cars[r >> 60 & 7]);
  }
  return fclose(f);
}
#endif
