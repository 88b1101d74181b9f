/* cmd_new.h -- `shopbot new SHOP_DIR [--persona NAME] [--name TEXT]`.
 *
 * Makes a self-contained shop folder from a persona: personas/<name>/ in
 * shopbot's data dir (paths.h) holds persona.json (where its flows, tests
 * and sample customers are), and the shop.json and README.md templates.
 * argv is main's shifted so argv[0] is "new". Exit codes: 0 made, 1
 * failed (nothing is left behind), 2 usage error. */
#ifndef RT_CMD_NEW_H
#define RT_CMD_NEW_H
int rt_cmd_new(int argc, char **argv);
#endif
