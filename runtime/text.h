/* text.h -- understanding what customers type.
 *
 * Everything a flow needs to read free Russian text: a normal form for
 * matching, car identifiers (VIN and Japanese frame numbers), phone numbers,
 * "when" expressions ("через две недели", "после зарплаты", "15-го") and the
 * coarse intent of a reply (stop, later, declined, need, done, yes, ...).
 * All functions take arbitrary bytes: invalid UTF-8, emoji and very long
 * strings are handled without reading past the terminating NUL. The rules are
 * hand-written and deliberately conservative: a missed VIN makes the flow ask
 * again, a wrong one orders the wrong part.
 *
 * The words of intents (what "stop" or "a part" is) are not here: they are
 * the persona's vocabulary (rt_text_vocab below, filled from Lua data). */
#ifndef RT_TEXT_H
#define RT_TEXT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- normal form ------------------------------------------------------ */

/* New string (caller frees): Latin and Cyrillic lower-cased, ё/Ё -> е,
 * whitespace runs (incl. NBSP and Unicode spaces) collapsed to one space and
 * trimmed. Invalid UTF-8 bytes become '?', so the result is valid UTF-8 and
 * never longer than the input. */
char *rt_text_norm(const char *s);
/* Same over s[0..n) (NUL bytes count as whitespace) into out, which must
 * hold n + 1 bytes. Returns the length written (out is NUL-terminated). */
size_t rt_text_norm_buf(const char *s, size_t n, char *out);

/* ---- car identifiers ------------------------------------------------- */

typedef struct {
  char kind;            /* 'v' VIN, 'f' frame (body) number */
  char value[32];       /* "XW8ZZZ614BG012345", "GX110-6012345" */
  bool check_ok;        /* VIN check digit (position 9) verifies */
  bool north_american;  /* VIN starts with 1-5: the check digit is mandatory */
  bool typo;            /* I, O or Q were typed and read as 1 / 0: ask to check */
} rt_text_car;
#define RT_TEXT_CAR_TYPO 1

/* Finds VINs and frame numbers in free text, in order of appearance, equal
 * values once. Stores at most max and returns how many were stored. */
int rt_text_cars(const char *s, rt_text_car *out, int max);
/* The same, also splitting a frame number typed without a separator after a
 * known model code ("GX1106012345" -> "GX110-6012345"; codes in upper case,
 * the persona's data: rt_text_vocab_models). */
int rt_text_cars_models(const char *s, rt_text_car *out, int max, const char *const *models,
                        size_t nmodels);
/* The first VIN / frame number in s. */
bool rt_text_vin(const char *s, char out[18]);
/* Whether the 17 characters of v (A-Z except I, O, Q, and digits) carry a
 * right check digit in position 9 (ISO 3779 weights; 'X' for 10). Only
 * North American VINs must; elsewhere it is a hint. */
bool rt_text_vin_check(const char *v);
bool rt_text_frame(const char *s, char out[32]);

/* ---- phones ------------------------------------------------------------ */

/* The first phone number in free text, as E.164 ("+79123456789"). */
bool rt_text_phone(const char *s, char out[20]);
/* Every different phone number in s, in order of appearance, at most max;
 * returns how many. Two numbers in one answer are asked about, not guessed. */
int rt_text_phones(const char *s, char (*out)[20], int max);
#define RT_TEXT_PHONES 1
/* The whole of s as a phone field (CSV import): only digits, one leading +
 * and separators " -().". False on anything else. */
bool rt_text_phone_norm(const char *s, char out[20]);
/* A phone cell read the way chat reads a message: the whole cell as above,
 * or else the one number in it with a label, a name or an extension around
 * it, that text copied to rest (restn bytes, trimmed; may be NULL). False
 * when there is no number or more than one different number. */
bool rt_text_phone_field(const char *s, char out[20], char *rest, size_t restn);

/* ---- plates ------------------------------------------------------------ */

/* A Russian registration plate (letter, three digits, two letters, a 2-3
 * digit region: "А123ВС96", "a 123 bc 196 rus", "(А123ВС-96).") as "A123BC96"
 * in Latin capitals. whole: s must be the plate and nothing else (ASCII
 * punctuation around it allowed); otherwise the first plate standing as
 * whole words, at most 5 of them, in free text. Linear in strlen(s). */
bool rt_text_plate(const char *s, bool whole, char out[16]);

/* ---- counting, plain words and bounded views -------------------------- */

/* Letters and digits in s[0..n): 0-9, a-z, а-я (either case, ё as е). */
size_t rt_text_letters(const char *s, size_t n);
/* The normal form of s[0..n) with ASCII punctuation as spaces: only words
 * of letters, digits and other symbols, one space apart ("Нужны: колодки,
 * фильтр!" -> "нужны колодки фильтр"). out must hold n + 1 bytes; returns
 * the length written. */
size_t rt_text_plain_buf(const char *s, size_t n, char *out);
/* The byte length of the first max_chars characters of s[0..n) (an invalid
 * byte is one character). *cut tells whether anything was left out; a word
 * the cut would split (up to 32 characters long) is left out whole, so the
 * head never ends in half a VIN. */
size_t rt_text_head(const char *s, size_t n, size_t max_chars, bool *cut);

/* ---- dates ------------------------------------------------------------- */

typedef struct {
  int payday[4];     /* days of month; 0 = unused; all 0 = {5, 20} */
  int default_hour;  /* local hour of the result, 0-23; otherwise 10 */
  int newyear_last;  /* the last January day off of the New Year holidays
                        (production calendar); 0 = built in: 2025 the 8th,
                        2026 the 11th, 2027 the 10th, other years the 8th */
} rt_text_date_opts;

#define RT_TEXT_DATE_OPTS_DEFAULT {{5, 20, 0, 0}, 10, 0}

/* (Named *_res because the function below already owns rt_text_date.) */
typedef struct {
  int64_t at;        /* unix seconds of that local day at default_hour:00 */
  char kind[16];     /* "relative", "tomorrow", "after_tomorrow", "next_week",
                        "weekday", "weekend", "monthday", "date", "month",
                        "month_end", "month_start", "month_mid", "next_month",
                        "season", "payday", "holidays" */
  char matched[64];  /* the expression as found in the normal form of s */
} rt_text_date_res;

/* Finds the first (leftmost) date expression in s relative to now, in zone
 * tz (NULL or unknown: Europe/Moscow). opts may be NULL. Returns 1 and fills
 * out when found, else 0. */
int rt_text_date(const char *s, int64_t now, const char *tz,
                 const rt_text_date_opts *opts, rt_text_date_res *out);

/* ---- intents ----------------------------------------------------------- */

enum {
  RT_INTENT_YES = 1u << 0,
  RT_INTENT_NO = 1u << 1,
  RT_INTENT_DONE = 1u << 2,      /* finished listing parts */
  RT_INTENT_STOP = 1u << 3,      /* unsubscribe */
  RT_INTENT_LATER = 1u << 4,     /* ask again later / names a date */
  RT_INTENT_NEED = 1u << 5,      /* wants a part */
  RT_INTENT_DECLINED = 1u << 6,  /* needs nothing */
  RT_INTENT_PROBLEM = 1u << 7,   /* complaint, return */
  RT_INTENT_THANKS = 1u << 8,
};
#define RT_INTENT_ALL 0x1ffu

/* ---- vocabulary --------------------------------------------------------- */

/* A persona's words: named classes of pcre2 alternatives over the normal
 * form (text_vocab.c). The host knows no word of its own; the persona's Lua
 * data fills a vocabulary when the flows load (text.vocab). The classes
 * the intents are made of: stop, later, declined, problem, need, part,
 * done, no, yes, thanks, circumstance (a refusal by circumstance: "машину
 * продал"); any other class can be asked by name (rt_text_vocab_match). */
typedef struct rt_text_vocab rt_text_vocab;

rt_text_vocab *rt_text_vocab_new(void);
void rt_text_vocab_free(rt_text_vocab *v);
/* Adds one alternative to class name (a-z, 0-9, _). RT_EINVAL and an owned
 * message when pcre2 refuses the pattern ("missing closing parenthesis at
 * character 12") or the vocabulary is already built. */
int rt_text_vocab_add(rt_text_vocab *v, const char *name, const char *pattern, char **err);
/* A Japanese frame model code ("GX110", "NZE141"): frame numbers typed
 * without a separator are split after it. RT_EINVAL if not 2-8 letters and
 * digits. */
int rt_text_vocab_model(rt_text_vocab *v, const char *code);
const char *const *rt_text_vocab_models(const rt_text_vocab *v, size_t *n);
/* Compiles every class; after it nothing can be added. */
int rt_text_vocab_build(rt_text_vocab *v, char **err);
bool rt_text_vocab_has(const rt_text_vocab *v, const char *name);

/* Every intent the text expresses, as a bit set (0 before build). Each
 * class is tried on the normal form and on its Russian reading. */
unsigned rt_text_vocab_intents(rt_text_vocab *v, const char *s);
/* Whether s has one intent (an RT_INTENT_* bit); the same answer as
 * (intents & bit) != 0, computing only what that intent needs. */
bool rt_text_vocab_is(rt_text_vocab *v, const char *s, unsigned bit);
/* The one that decides the flow, by priority stop > later > declined >
 * problem > need > done > no > yes > thanks; NULL when none. */
const char *rt_text_vocab_intent(rt_text_vocab *v, const char *s);
/* Whether the named class matches s (false for an unknown class). */
bool rt_text_vocab_match(rt_text_vocab *v, const char *s, const char *name);
/* "stop", "later", ... for one bit; NULL for anything else. */
const char *rt_text_intent_name(unsigned bit);
/* The bit for a name, 0 if unknown. */
unsigned rt_text_intent_bit(const char *name);

/* ---- generic pieces the vocabulary uses ---------------------------------- */

/* The Russian reading of a normal form: words of Latin letters only are
 * transliterated ("net spasibo" -> "нет спасибо"), Latin look-alikes inside
 * Cyrillic words replaced; words with digits are kept. out must hold
 * 2 * n + 1 bytes; returns the length written. */
size_t rt_text_ru_buf(const char *norm, size_t n, char *out);
/* The leftmost date expression in a normal form, not computed: its kind
 * and whether a deadline preposition ("к", "до") opens it. */
bool rt_text_date_in_norm(const char *norm, const char **kind, bool *deadline);

/* ---- Lua --------------------------------------------------------------- */

struct lua_State;
/* Pushes a new table {norm, plain, ru, head, letters, plate, cars, car,
 * vin, frame, phone, date, vocab, intent, is}; sets no globals. The
 * vocabulary text.vocab builds is kept in the state's registry: each flow
 * bundle has its own, and a reload builds a new one with the new bundle. */
int rt_luaopen_text(struct lua_State *L);
/* The vocabulary text.vocab built in this state, or NULL. */
rt_text_vocab *rt_lapi_text_vocab(struct lua_State *L);

#endif
