/* lapi_pattern.c -- Lua 5.4 pattern matching charged to the step's budget
 * (see lapi_pattern.h).
 *
 * A backtracking matcher over the pattern text, written from the Lua 5.4
 * manual (section 6.4.1) so that results and error messages are those of
 * stock Lua; tests/unit/test_lapi_pattern.c compares the two on generated
 * and hand-written cases. What differs is the accounting: every pattern
 * item tried, every repetition scanned and every byte compared adds to a
 * counter that is handed to rt_lvm_charge in chunks, so the instruction
 * budget and the step timeout cover time spent here.
 *
 * Recursion (for '?', '*', '+', '-' and captures) is bounded by MAX_DEPTH,
 * the same bound as stock Lua, which reports "pattern too complex" past it.
 * Character classes are ASCII (the C locale), whatever the process locale. */
#include "lapi_pattern.h"
#include "lapi.h"
#include <lualib.h>
#include <stdint.h>
#include <string.h>

#define MAX_CAPTURES 32     /* LUA_MAXCAPTURES of stock Lua */
#define MAX_DEPTH 200       /* MAXCCALLS of stock lstrlib: same "too complex" */
#define CHARGE_CHUNK 512    /* steps between two rt_lvm_charge calls */
#define BYTES_PER_UNIT 8    /* bytes memcmp/memmem compare for one unit */

#define CAP_OPEN (-1)       /* capture started, not yet closed */
#define CAP_POSITION (-2)   /* "()" capture: its value is a position */

typedef struct {
  lua_State *L;
  const char *src, *src_end;   /* subject */
  const char *pat_end;         /* end of the pattern (a NUL follows it) */
  int depth;                   /* recursion levels left */
  int level;                   /* captures in use */
  int64_t steps;               /* work not yet charged */
  struct {
    const char *init;
    ptrdiff_t len;             /* or CAP_OPEN / CAP_POSITION */
  } cap[MAX_CAPTURES];
} mstate;

static inline int uc(char c) { return (unsigned char)c; }

/* ---- accounting ---- */

static void charge_now(mstate *m) {
  int64_t u = m->steps;
  m->steps = 0;
  if (u > 0) rt_lvm_charge(m->L, u);   /* may raise the budget error */
}

static inline void spend(mstate *m, int64_t units) {
  m->steps += units;
  if (m->steps >= CHARGE_CHUNK) charge_now(m);
}

static void init_state(mstate *m, lua_State *L, const char *s, size_t ls, const char *p,
                       size_t lp) {
  m->L = L;
  m->src = s;
  m->src_end = s + ls;
  m->pat_end = p + lp;
  m->steps = 0;
}

/* Before each match attempt: no captures, full depth. */
static void restart(mstate *m) {
  m->level = 0;
  m->depth = MAX_DEPTH;
}

/* ---- single characters ---- */

/* %x classes in the C locale. cl is the letter after '%'; an upper-case
 * letter is the complement, any other character stands for itself. */
static int class_has(int c, int cl) {
  int lower = (cl >= 'A' && cl <= 'Z') ? cl + ('a' - 'A') : cl;
  int isup = c >= 'A' && c <= 'Z', islo = c >= 'a' && c <= 'z';
  int isdig = c >= '0' && c <= '9';
  int r;
  switch (lower) {
    case 'a': r = isup || islo; break;
    case 'c': r = c < 32 || c == 127; break;
    case 'd': r = isdig; break;
    case 'g': r = c > 32 && c < 127; break;
    case 'l': r = islo; break;
    case 'p': r = c > 32 && c < 127 && !isup && !islo && !isdig; break;
    case 's': r = c == ' ' || (c >= '\t' && c <= '\r'); break;
    case 'u': r = isup; break;
    case 'w': r = isup || islo || isdig; break;
    case 'x': r = isdig || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); break;
    case 'z': r = c == 0; break;   /* deprecated in 5.2, still in 5.4 */
    default: return cl == c;
  }
  return lower != cl ? !r : r;
}

/* Does c belong to the set [ ... ] that starts at open ('[') and whose
 * closing ']' is at close? */
static int set_has(int c, const char *open, const char *close) {
  const char *p = open + 1;
  int found = 1;
  if (*p == '^') {
    found = 0;
    p++;
  }
  for (; p < close; p++) {
    if (*p == '%') {
      p++;
      if (class_has(c, uc(*p))) return found;
    } else if (p[1] == '-' && p + 2 < close) {
      if (uc(p[0]) <= c && c <= uc(p[2])) return found;
      p += 2;
    } else if (uc(*p) == c) {
      return found;
    }
  }
  return !found;
}

/* End of the single-character item at p (just past "x", "%x" or "[...]"). */
static const char *item_end(mstate *m, const char *p) {
  char c = *p++;
  if (c == '%') {
    if (p == m->pat_end) luaL_error(m->L, "malformed pattern (ends with '%%')");
    return p + 1;
  }
  if (c == '[') {
    if (*p == '^') p++;
    /* The first character is part of the set even when it is ']'. */
    do {
      if (p == m->pat_end) luaL_error(m->L, "malformed pattern (missing ']')");
      c = *p++;
      if (c == '%' && p < m->pat_end) p++;   /* "%]" does not close */
    } while (*p != ']');
    return p + 1;
  }
  return p;
}

/* Extra units for testing one character against the item [p, ep): a long
 * set costs in proportion to its length, anything else nothing extra. */
static inline int64_t item_cost(const char *p, const char *ep) {
  return (ep - p) / 16;
}

/* Does the subject character at s match the item [p, ep)? */
static inline int item_has(const mstate *m, const char *s, const char *p, const char *ep) {
  if (s >= m->src_end) return 0;
  int c = uc(*s);
  switch (*p) {
    case '.': return 1;
    case '%': return class_has(c, uc(p[1]));
    case '[': return set_has(c, p, ep - 1);
    default: return uc(*p) == c;
  }
}

/* ---- the matcher ---- */

static const char *match(mstate *m, const char *s, const char *p);

/* x* (or x+ after its first match): the longest run first, then shorter. */
static const char *rep_greedy(mstate *m, const char *s, const char *p, const char *ep) {
  ptrdiff_t n = 0;
  while (item_has(m, s + n, p, ep)) n++;
  spend(m, n * (1 + item_cost(p, ep)));
  for (; n >= 0; n--) {
    const char *r = match(m, s + n, ep + 1);
    if (r) return r;
  }
  return NULL;
}

/* x-: the shortest run first, then one more. */
static const char *rep_lazy(mstate *m, const char *s, const char *p, const char *ep) {
  for (;;) {
    const char *r = match(m, s, ep + 1);
    if (r) return r;
    spend(m, item_cost(p, ep));
    if (!item_has(m, s, p, ep)) return NULL;
    s++;
  }
}

static const char *open_capture(mstate *m, const char *s, const char *p, ptrdiff_t what) {
  if (m->level >= MAX_CAPTURES) luaL_error(m->L, "too many captures");
  m->cap[m->level].init = s;
  m->cap[m->level].len = what;
  m->level++;
  const char *r = match(m, s, p);
  if (!r) m->level--;
  return r;
}

static const char *close_capture(mstate *m, const char *s, const char *p) {
  int i = m->level - 1;
  while (i >= 0 && m->cap[i].len != CAP_OPEN) i--;
  if (i < 0) luaL_error(m->L, "invalid pattern capture");
  m->cap[i].len = s - m->cap[i].init;
  const char *r = match(m, s, p);
  if (!r) m->cap[i].len = CAP_OPEN;
  return r;
}

/* %bxy at s; p points at x. */
static const char *balanced(mstate *m, const char *s, const char *p) {
  if (p >= m->pat_end - 1)
    luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
  if (s >= m->src_end || *s != *p) return NULL;
  char open = p[0], close = p[1];
  int depth = 1;
  const char *start = s;
  while (++s < m->src_end) {
    if (*s == close) {
      if (--depth == 0) {
        spend(m, s - start);
        return s + 1;
      }
    } else if (*s == open) {
      depth++;
    }
  }
  spend(m, s - start);
  return NULL;
}

/* %1 .. %9 at s: the same text as that capture. */
static const char *backref(mstate *m, const char *s, int digit) {
  int i = digit - '1';
  if (i < 0 || i >= m->level || m->cap[i].len == CAP_OPEN)
    luaL_error(m->L, "invalid capture index %%%d", i + 1);
  /* A position capture has no text; its negative length never fits. */
  size_t len = (size_t)m->cap[i].len;
  if ((size_t)(m->src_end - s) < len) return NULL;
  spend(m, (int64_t)(len / BYTES_PER_UNIT));
  return memcmp(m->cap[i].init, s, len) == 0 ? s + len : NULL;
}

/* Matches the pattern from p against the subject from s; returns the end
 * of the match or NULL. Plain sequencing loops; only the choices above
 * recurse, at most MAX_DEPTH deep. */
static const char *match(mstate *m, const char *s, const char *p) {
  if (m->depth-- == 0) luaL_error(m->L, "pattern too complex");
  for (;;) {
    spend(m, 1);
    if (p == m->pat_end) break;
    switch (*p) {
      case '(':
        s = p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION)
                        : open_capture(m, s, p + 1, CAP_OPEN);
        goto done;
      case ')':
        s = close_capture(m, s, p + 1);
        goto done;
      case '$':
        if (p + 1 == m->pat_end) {
          if (s != m->src_end) s = NULL;
          goto done;
        }
        break;   /* a '$' elsewhere is a plain character */
      case '%':
        switch (p[1]) {
          case 'b':
            s = balanced(m, s, p + 2);
            if (!s) goto done;
            p += 4;
            continue;
          case 'f': {
            p += 2;
            if (*p != '[') luaL_error(m->L, "missing '[' after '%%f' in pattern");
            const char *ep = item_end(m, p);
            spend(m, 2 * item_cost(p, ep));
            int prev = s == m->src ? 0 : uc(s[-1]);
            int cur = s < m->src_end ? uc(*s) : 0;
            if (set_has(prev, p, ep - 1) || !set_has(cur, p, ep - 1)) {
              s = NULL;
              goto done;
            }
            p = ep;
            continue;
          }
          case '0': case '1': case '2': case '3': case '4':
          case '5': case '6': case '7': case '8': case '9':
            s = backref(m, s, uc(p[1]));
            if (!s) goto done;
            p += 2;
            continue;
          default:
            break;   /* a class like %d */
        }
        break;
      default:
        break;
    }
    /* One single-character item and its optional repetition suffix. */
    const char *ep = item_end(m, p);
    spend(m, item_cost(p, ep));   /* for item_end and item_has both */
    if (!item_has(m, s, p, ep)) {
      if (*ep == '*' || *ep == '?' || *ep == '-') {   /* zero times is fine */
        p = ep + 1;
        continue;
      }
      s = NULL;
      goto done;
    }
    switch (*ep) {
      case '?': {
        const char *r = match(m, s + 1, ep + 1);
        if (r) {
          s = r;
          goto done;
        }
        p = ep + 1;
        continue;
      }
      case '+': s = rep_greedy(m, s + 1, p, ep); goto done;
      case '*': s = rep_greedy(m, s, p, ep); goto done;
      case '-': s = rep_lazy(m, s, p, ep); goto done;
      default:
        s++;
        p = ep;
        continue;
    }
  }
done:
  m->depth++;
  return s;
}

/* If every match must start with one known byte (a plain character not
 * allowed to repeat zero times), returns it, else -1. Lets the search skip
 * start positions with memchr; the attempts skipped would fail at once. */
static int first_byte(const mstate *m, const char *p) {
  if (p == m->pat_end) return -1;
  switch (*p) {
    case '(': case ')': case '%': case '.': case '[': return -1;
    case '$': if (p + 1 == m->pat_end) return -1; break;
    default: break;
  }
  if (p + 1 < m->pat_end && (p[1] == '*' || p[1] == '?' || p[1] == '-')) return -1;
  return uc(*p);
}

/* Next start position from s1 (inclusive) worth trying, or NULL. */
static inline const char *next_start(mstate *m, const char *s1, int fb) {
  if (fb < 0 || s1 >= m->src_end) return s1;
  const char *q = memchr(s1, fb, (size_t)(m->src_end - s1));
  spend(m, ((q ? q : m->src_end) - s1) / BYTES_PER_UNIT);
  return q;
}

/* ---- captures to Lua values ---- */

/* Capture i (the whole match [s, e) when there are none and i is
 * 0). Returns its text in txt and len, or txt = NULL and the position in len. */
static void capture_value(mstate *m, int i, const char *s, const char *e, const char **txt,
                          size_t *len) {
  if (i >= m->level) {
    if (i != 0) luaL_error(m->L, "invalid capture index %%%d", i + 1);
    *txt = s;
    *len = (size_t)(e - s);
    return;
  }
  ptrdiff_t l = m->cap[i].len;
  if (l == CAP_OPEN) luaL_error(m->L, "unfinished capture");
  if (l == CAP_POSITION) {
    *txt = NULL;
    *len = (size_t)(m->cap[i].init - m->src) + 1;
    return;
  }
  *txt = m->cap[i].init;
  *len = (size_t)l;
}

static void push_capture(mstate *m, int i, const char *s, const char *e) {
  const char *txt;
  size_t len;
  capture_value(m, i, s, e, &txt, &len);
  if (txt) lua_pushlstring(m->L, txt, len);
  else lua_pushinteger(m->L, (lua_Integer)len);
}

/* Pushes all captures, or the whole match when the pattern has none and s
 * is given. Returns how many. */
static int push_captures(mstate *m, const char *s, const char *e) {
  int n = (m->level == 0 && s) ? 1 : m->level;
  luaL_checkstack(m->L, n, "too many captures");
  for (int i = 0; i < n; i++) push_capture(m, i, s, e);
  return n;
}

/* ---- string.find / string.match ---- */

/* Position argument to a 0-based offset (may exceed len: nothing found). */
static size_t start_offset(lua_Integer pos, size_t len) {
  if (pos > 0) return (size_t)pos - 1;
  if (pos == 0 || pos < -(lua_Integer)len) return 0;
  return len - (size_t)(-pos);
}

static int has_specials(const char *p, size_t lp) {
  for (size_t i = 0; i < lp; i++) {
    switch (p[i]) {
      case '^': case '$': case '*': case '+': case '?': case '.':
      case '(': case '[': case '%': case '-': return 1;
      default: break;
    }
  }
  return 0;
}

static int find_or_match(lua_State *L, int find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
  if (init > ls) {
    luaL_pushfail(L);
    return 1;
  }
  mstate m;
  init_state(&m, L, s, ls, p, lp);
  if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
    const char *hit = memmem(s + init, ls - init, p, lp);
    spend(&m, (int64_t)((hit ? (size_t)(hit - s) + lp : ls) - init) / BYTES_PER_UNIT);
    charge_now(&m);
    if (!hit) {
      luaL_pushfail(L);
      return 1;
    }
    lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
    lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
    return 2;
  }
  int anchor = *p == '^';
  if (anchor) p++;
  int fb = anchor ? -1 : first_byte(&m, p);
  const char *s1 = s + init;
  for (;;) {
    s1 = next_start(&m, s1, fb);
    if (!s1) break;
    restart(&m);
    const char *e = match(&m, s1, p);
    if (e) {
      charge_now(&m);
      if (!find) return push_captures(&m, s1, e);
      lua_pushinteger(L, (lua_Integer)(s1 - s) + 1);
      lua_pushinteger(L, (lua_Integer)(e - s));
      return push_captures(&m, NULL, NULL) + 2;
    }
    if (anchor || s1 >= m.src_end) break;
    s1++;
  }
  charge_now(&m);
  luaL_pushfail(L);
  return 1;
}

int rt_lapi_pattern_find(lua_State *L) { return find_or_match(L, 1); }
int rt_lapi_pattern_match(lua_State *L) { return find_or_match(L, 0); }

/* ---- string.gmatch ---- */

/* State of one gmatch iteration; subject and pattern are upvalues 1, 2. */
typedef struct {
  size_t next;        /* offset where the next search starts */
  ptrdiff_t last;     /* end offset of the last match, -1 before the first */
} gmatch_pos;

static int gmatch_step(lua_State *L) {
  size_t ls, lp;
  const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
  const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
  gmatch_pos *g = lua_touserdata(L, lua_upvalueindex(3));
  mstate m;
  init_state(&m, L, s, ls, p, lp);
  int fb = first_byte(&m, p);   /* '^' is a plain character here, as in Lua 5.4 */
  if (g->next > ls) return 0;
  const char *s1 = s + g->next;
  for (;;) {
    s1 = next_start(&m, s1, fb);
    if (!s1) break;
    restart(&m);
    const char *e = match(&m, s1, p);
    if (e && e - s != g->last) {
      charge_now(&m);
      g->next = (size_t)(e - s);
      g->last = e - s;
      return push_captures(&m, s1, e);
    }
    if (s1 >= m.src_end) break;
    s1++;
  }
  charge_now(&m);
  return 0;
}

int rt_lapi_pattern_gmatch(lua_State *L) {
  size_t ls;
  luaL_checklstring(L, 1, &ls);
  luaL_checkstring(L, 2);
  size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
  lua_settop(L, 2);   /* the closure keeps subject and pattern alive */
  gmatch_pos *g = lua_newuserdatauv(L, sizeof *g, 0);
  g->next = init > ls ? ls + 1 : init;
  g->last = -1;
  lua_pushcclosure(L, gmatch_step, 3);
  return 1;
}

/* ---- string.gsub ---- */

/* Appends the replacement string (argument 3) for the match [s, e). */
static void add_template(mstate *m, luaL_Buffer *b, const char *s, const char *e) {
  lua_State *L = m->L;
  size_t l;
  const char *r = lua_tolstring(L, 3, &l);
  spend(m, (int64_t)(l / BYTES_PER_UNIT));
  const char *pct;
  while ((pct = memchr(r, '%', l)) != NULL) {
    luaL_addlstring(b, r, (size_t)(pct - r));
    char d = pct[1];   /* the NUL after the string when '%' is last */
    if (d == '%') {
      luaL_addchar(b, '%');
    } else if (d == '0') {
      luaL_addlstring(b, s, (size_t)(e - s));
    } else if (d >= '1' && d <= '9') {
      const char *txt;
      size_t len;
      capture_value(m, d - '1', s, e, &txt, &len);
      if (txt) {
        luaL_addlstring(b, txt, len);
      } else {
        lua_pushinteger(L, (lua_Integer)len);
        luaL_addvalue(b);
      }
    } else {
      luaL_error(L, "invalid use of '%c' in replacement string", '%');
    }
    l -= (size_t)(pct + 2 - r);
    r = pct + 2;
  }
  luaL_addlstring(b, r, l);
}

/* Appends the replacement for [s, e); returns whether it changed the text. */
static int add_replacement(mstate *m, luaL_Buffer *b, const char *s, const char *e, int tr) {
  lua_State *L = m->L;
  if (tr == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    int n = push_captures(m, s, e);
    lua_call(L, n, 1);
  } else if (tr == LUA_TTABLE) {
    push_capture(m, 0, s, e);
    lua_gettable(L, 3);
  } else {
    add_template(m, b, s, e);
    spend(m, (int64_t)((size_t)(e - s) / BYTES_PER_UNIT));
    return 1;
  }
  if (!lua_toboolean(L, -1)) {   /* nil or false: keep the match */
    lua_pop(L, 1);
    luaL_addlstring(b, s, (size_t)(e - s));
    spend(m, (int64_t)((size_t)(e - s) / BYTES_PER_UNIT));
    return 0;
  }
  if (!lua_isstring(L, -1))
    return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  size_t rl;
  lua_tolstring(L, -1, &rl);
  luaL_addvalue(b);
  spend(m, (int64_t)(rl / BYTES_PER_UNIT));
  return 1;
}

int rt_lapi_pattern_gsub(lua_State *L) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  int tr = lua_type(L, 3);
  lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
  luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION ||
                   tr == LUA_TTABLE, 3, "string/function/table");
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  mstate m;
  init_state(&m, L, s, ls, p, lp);
  int anchor = *p == '^';
  if (anchor) p++;
  int fb = anchor ? -1 : first_byte(&m, p);
  const char *src = s, *last = NULL;
  lua_Integer n = 0;
  int changed = 0;
  while (n < max_n) {
    /* Copy the stretch no match can start in at once. */
    const char *q = anchor ? src : next_start(&m, src, fb);
    if (!q) q = m.src_end;
    if (q > src) {
      luaL_addlstring(&b, src, (size_t)(q - src));
      src = q;
    }
    restart(&m);
    const char *e = (fb < 0 || src < m.src_end) ? match(&m, src, p) : NULL;
    if (e && e != last) {
      n++;
      changed |= add_replacement(&m, &b, src, e, tr);
      src = last = e;
    } else if (src < m.src_end) {
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    if (anchor) break;
  }
  charge_now(&m);
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    luaL_addlstring(&b, src, (size_t)(m.src_end - src));
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, n);
  return 2;
}

/* ---- installation ---- */

void rt_lapi_pattern_install(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"find", rt_lapi_pattern_find}, {"match", rt_lapi_pattern_match},
    {"gmatch", rt_lapi_pattern_gmatch}, {"gsub", rt_lapi_pattern_gsub}, {NULL, NULL}};
  lua_getglobal(L, LUA_STRLIBNAME);
  luaL_setfuncs(L, fns, 0);
  /* Bytecode of flow functions is of no use to a flow and is a way to
   * load() crafted bytecode if load is ever reachable. */
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
}
