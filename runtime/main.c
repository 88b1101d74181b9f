/* main.c -- the shopbot command line: argv to a command. The commands'
 * work is elsewhere: run, chat and check in app.c, test in transcript.c,
 * import, campaign, stats and new in tools/. The only file outside the
 * libraries. */
#include "app.h"
#include "cmd_new.h"
#include "cmd_tools.h"
#include "config.h"
#include "console/console.h"
#include "http_server.h"
#include "log.h"
#include "paths.h"
#include "rt.h"
#include "transcript.h"
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
  "usage: shopbot COMMAND [ARGS]\n"
  "\n"
  "  run      SHOP_DIR                 run the shop's bot\n"
  "  chat     SHOP_DIR [--user ID]     talk to the flows in the terminal\n"
  "  studio   SHOP_DIR [--listen H:P]  try, watch, test and measure the flows in a browser\n"
  "  test     SHOP_DIR [FILES...]      run transcript tests of the flows\n"
  "  check    SHOP_DIR                 validate shop.json and compile the flows\n"
  "  import   SHOP_DIR FILE.csv        import customers and orders\n"
  "  campaign SHOP_DIR retention|gifts schedule check-ins\n"
  "  stats    SHOP_DIR                 campaign funnels, leads, LLM cost\n"
  "  new      SHOP_DIR [--name TEXT]   make a new shop folder from a persona\n"
  "  schema                            print the shop.json schema (with the plugins')\n"
  "\n"
  "  shopbot COMMAND --help   help on one command\n"
  "  shopbot --version        print the version\n";

static int bad_usage(const char *cmd, const char *msg, const char *u) {
  fprintf(stderr, "shopbot %s: %s\n%s", cmd, msg, u);
  return 2;
}

static bool is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

/* ---- commands ---- */

static const char run_usage[] =
  "usage: shopbot run SHOP_DIR\n"
  "\n"
  "Runs the shop's bot: channels from shop.json, durable timers, the\n"
  "outbox, /healthz and /metrics on http.listen, and hot reload of the\n"
  "flows folder. SIGHUP reloads flows; SIGINT/SIGTERM stop cleanly.\n";

static int cmd_run(int argc, char **argv) {
  const char *shop = NULL;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { fputs(run_usage, stdout); return 0; }
    if (argv[i][0] == '-') return bad_usage("run", "unknown option", run_usage);
    if (shop) return bad_usage("run", "too many arguments", run_usage);
    shop = argv[i];
  }
  if (!shop) return bad_usage("run", "SHOP_DIR is required", run_usage);
  return rt_app_run(&(rt_app_opts){.cmd = "run", .shop_dir = shop});
}

static const char chat_usage[] =
  "usage: shopbot chat SHOP_DIR [--user ID] [--fresh]\n"
  "\n"
  "Talk to the shop's flows in the terminal: your lines go to the bot as a\n"
  "customer's messages, the bot's messages come back one per line\n"
  "(continuation lines indented). Works in a pipe, so it can be scripted;\n"
  "end of input ends it once every reply is out. The store is the shop's,\n"
  "so the conversation continues across runs, and flows reload on edit.\n"
  "\n"
  "  --user ID   chat as this customer (default: local); 1-512 characters\n"
  "              of A-Z a-z 0-9 . _ - + @\n"
  "  --fresh     start from a new conversation: the customer's earlier one\n"
  "              (its flow, slots, a manager's hold, wake-ups) is closed first\n"
  "\n"
  "When the chat is with a manager (the bot handed it over, or /manager\n"
  "take) the bot answers nothing; chat says so at start and with each line.\n"
  "\n"
  "Lines starting with a slash:\n"
  "  /manager take      act as the shop's manager taking the chat\n"
  "  /manager release   hand the chat back to the bot\n"
  "  /new               start a new conversation (as --fresh)\n"
  "  /reload            reload the flows now\n";

static int cmd_chat(int argc, char **argv) {
  const char *shop = NULL, *user = "local";
  bool fresh = false;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { fputs(chat_usage, stdout); return 0; }
    if (strcmp(argv[i], "--fresh") == 0) {
      fresh = true;
    } else if (strcmp(argv[i], "--user") == 0) {
      if (++i >= argc || !*argv[i]) return bad_usage("chat", "--user needs an ID", chat_usage);
      user = argv[i];
    } else if (strncmp(argv[i], "--user=", 7) == 0) {
      user = argv[i] + 7;
    } else if (argv[i][0] == '-') {
      return bad_usage("chat", "unknown option", chat_usage);
    } else if (shop) {
      return bad_usage("chat", "too many arguments", chat_usage);
    } else {
      shop = argv[i];
    }
  }
  if (!shop) return bad_usage("chat", "SHOP_DIR is required", chat_usage);
  const char *bad_user = rt_console_user_problem(user);
  if (bad_user) return bad_usage("chat", bad_user, chat_usage);
  return rt_app_run(&(rt_app_opts){.cmd = "chat", .shop_dir = shop, .chat_user = user,
                                   .chat_fresh = fresh});
}

static const char studio_usage[] =
  "usage: shopbot studio SHOP_DIR [--listen HOST:PORT]\n"
  "\n"
  "Opens the studio: a page (on http.listen, http://127.0.0.1:8080/ unless\n"
  "--listen says otherwise; the URL is printed) to chat with the flows as\n"
  "test customers, start campaign check-ins for the sample customers\n"
  "(SHOP_DIR/customers.csv), watch each conversation's step, slots and\n"
  "wake-ups, act as the manager, move time, run the transcript tests, save a\n"
  "conversation as a transcript (SHOP_DIR/tests/NAME.chat) and see the\n"
  "figures as plots. It works on a private copy: a temporary store removed\n"
  "at exit and a virtual clock; the shop's conversations and customers are\n"
  "never touched and no messenger is contacted. The flows are the shop's\n"
  "own, reloaded on every save. See docs/studio.md.\n"
  "\n"
  "  --listen HOST:PORT   where the page is served (127.0.0.1:0 picks a free port)\n";

static int cmd_studio(int argc, char **argv) {
  const char *shop = NULL, *listen = NULL;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { fputs(studio_usage, stdout); return 0; }
    if (strcmp(argv[i], "--listen") == 0) {
      if (++i >= argc || !*argv[i]) return bad_usage("studio", "--listen needs HOST:PORT", studio_usage);
      listen = argv[i];
    } else if (strncmp(argv[i], "--listen=", 9) == 0) {
      listen = argv[i] + 9;
    } else if (argv[i][0] == '-') {
      return bad_usage("studio", "unknown option", studio_usage);
    } else if (shop) {
      return bad_usage("studio", "too many arguments", studio_usage);
    } else {
      shop = argv[i];
    }
  }
  if (!shop) return bad_usage("studio", "SHOP_DIR is required", studio_usage);
  char *err = NULL;
  if (listen && rt_httpd_check_listen(listen, &err) != RT_OK) {
    fprintf(stderr, "shopbot studio: --listen: %s\n", err);
    free(err);
    return 2;
  }
  return rt_app_run(&(rt_app_opts){.cmd = "studio", .shop_dir = shop, .studio = true,
                                   .listen = listen});
}

static const char test_usage[] =
  "usage: shopbot test SHOP_DIR [FILES...] [-v]\n"
  "\n"
  "Runs transcript tests (*.chat) against the shop's flows, each with a\n"
  "fresh temporary store and a virtual clock. Without FILES it runs\n"
  "SHOP_DIR/tests/*.chat (tests.dir in shop.json). A FILE may be a folder.\n"
  "Prints PASS/FAIL per file, and for a failure the line, what was\n"
  "expected and what came. Exit status 1 if any test failed.\n"
  "The format: docs/transcripts.md.\n"
  "\n"
  "  -v, --verbose   print the conversations as they run\n";

static int cmp_str(const void *x, const void *y) {
  return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Appends the .chat files of a folder (sorted), or the file itself. */
static void collect(const char *path, char ***files, size_t *n) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    struct dirent *de;
    size_t start = *n;
    while (d && (de = readdir(d))) {
      size_t len = strlen(de->d_name);
      if (len > 5 && strcmp(de->d_name + len - 5, ".chat") == 0) {
        *files = rt_xrealloc(*files, (*n + 1) * sizeof **files);
        (*files)[(*n)++] = rt_xasprintf("%s/%s", path, de->d_name);
      }
    }
    if (d) closedir(d);
    if (*n > start) qsort(*files + start, *n - start, sizeof **files, cmp_str);
  } else {
    *files = rt_xrealloc(*files, (*n + 1) * sizeof **files);
    (*files)[(*n)++] = rt_xstrdup(path);
  }
}

static int cmd_test(int argc, char **argv) {
  const char *shop = NULL;
  bool verbose = false;
  char **files = NULL;
  size_t n = 0;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { fputs(test_usage, stdout); return 0; }
    if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) verbose = true;
    else if (argv[i][0] == '-') { for (size_t k = 0; k < n; k++) free(files[k]); free(files);
                                  return bad_usage("test", "unknown option", test_usage); }
    else if (!shop) shop = argv[i];
    else {
      /* A file may be named from here or from the shop folder
       * (tests/lead.chat), as a marketer would write it. */
      struct stat st;
      char *alt = rt_xasprintf("%s/%s", shop, argv[i]);
      collect(stat(argv[i], &st) != 0 && stat(alt, &st) == 0 ? alt : argv[i], &files, &n);
      free(alt);
    }
  }
  if (!shop) return bad_usage("test", "SHOP_DIR is required", test_usage);
  rt_log_set_level(verbose ? RT_LOG_INFO : RT_LOG_OFF);
  if (n == 0) {
    rt_config *cfg;
    if (rt_app_load_config("test", shop, &cfg) != RT_OK) return 1;
    rt_log_set_level(verbose ? RT_LOG_INFO : RT_LOG_OFF);
    char *dir = rt_config_path(cfg, rt_config_str(cfg, "tests.dir", "tests"));
    collect(dir, &files, &n);
    free(dir);
    rt_config_free(cfg);
  }
  if (n == 0) {
    fprintf(stderr, "shopbot test: no transcripts (*.chat) found\n");
    free(files);
    return 1;
  }
  int passed = 0, failed = 0;
  rt_transcript_opts o = {.shop_dir = shop, .verbose = verbose, .out = stdout};
  for (size_t i = 0; i < n; i++) {
    int rc = rt_transcript_run(&o, files[i]);
    if (rc == 0) passed++;
    else failed++;
    fflush(stdout);
    free(files[i]);
  }
  free(files);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

static const char check_usage[] =
  "usage: shopbot check SHOP_DIR [--print-config]\n"
  "\n"
  "Validates shop.json against the shop schema (schema/shop.schema.json with\n"
  "every plugin's section, `shopbot schema`), asks each plugin that would run\n"
  "whether its section works, and compiles every flow without starting the\n"
  "bot. Prints what is wrong with file, line or JSON path; exit status 1 if\n"
  "anything is. Secrets are never printed.\n"
  "\n"
  "  --print-config   print the effective config (defaults filled, secrets ***)\n";

static int cmd_check(int argc, char **argv) {
  const char *shop = NULL;
  bool print = false;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { fputs(check_usage, stdout); return 0; }
    if (strcmp(argv[i], "--print-config") == 0) print = true;
    else if (argv[i][0] == '-') return bad_usage("check", "unknown option", check_usage);
    else if (shop) return bad_usage("check", "too many arguments", check_usage);
    else shop = argv[i];
  }
  if (!shop) return bad_usage("check", "SHOP_DIR is required", check_usage);
  return rt_app_check(shop, print);
}

static const char schema_usage[] =
  "usage: shopbot schema\n"
  "\n"
  "Prints the JSON Schema shop.json is checked against: schema/shop.schema.json\n"
  "with the section of every plugin built in (plugins/<name>/schema.json)\n"
  "merged in. Point \"$schema\" in shop.json at a saved copy for an editor's\n"
  "hints on every key; the build also writes it as schema/shop.schema.json\n"
  "in the build folder, and that is the one installed.\n";

static int cmd_schema(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) { fputs(schema_usage, stdout); return 0; }
    return bad_usage("schema", "no arguments expected", schema_usage);
  }
  char *path = rt_paths_schema("shop.schema.json"), *err = NULL;
  json_t *schema = NULL;
  int rc = rt_config_schema(path, &schema, &err);
  free(path);
  if (rc != RT_OK) {
    fprintf(stderr, "shopbot schema: %s\n", err);
    free(err);
    return 1;
  }
  char *text = json_dumps(schema, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(schema);
  fputs(text, stdout);
  fputc('\n', stdout);
  free(text);
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    fputs(usage, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("shopbot %s\n", RT_VERSION);
    return 0;
  }
  if (is_help(cmd) || strcmp(cmd, "help") == 0) {
    fputs(usage, stdout);
    return 0;
  }
  static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
    {"run", cmd_run}, {"chat", cmd_chat}, {"studio", cmd_studio}, {"test", cmd_test}, {"check", cmd_check},
    {"import", rt_cmd_import}, {"campaign", rt_cmd_campaign}, {"stats", rt_cmd_stats},
    {"new", rt_cmd_new},
    {"schema", cmd_schema},
  };
  for (size_t i = 0; i < RT_ARRAY_LEN(cmds); i++)
    if (strcmp(cmd, cmds[i].name) == 0) return cmds[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "shopbot: unknown command '%s'\n%s", cmd, usage);
  return 2;
}
