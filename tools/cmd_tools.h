/* cmd_tools.h -- the offline subcommands: import, campaign, stats.
 *
 * Each takes main's argv shifted so argv[0] is the command name, loads
 * SHOP_DIR/shop.json and opens the store at its store.path. They do not take
 * the shop lock: a running bot and these commands share the SQLite file in
 * WAL mode, and writes wait for each other through BEGIN IMMEDIATE and the
 * busy timeout. Exit codes: 0 done, 1 failed, 2 usage error.
 *
 *   shopbot import SHOP_DIR FILE.csv
 *   shopbot campaign SHOP_DIR retention|gifts [--dry-run] [--json] [--now ISO8601]
 *   shopbot stats SHOP_DIR [--since YYYY-MM-DD] [--json] */
#ifndef RT_CMD_TOOLS_H
#define RT_CMD_TOOLS_H

int rt_cmd_import(int argc, char **argv);
int rt_cmd_campaign(int argc, char **argv);
int rt_cmd_stats(int argc, char **argv);

#endif
