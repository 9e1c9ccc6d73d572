/* config.h - parley's settings (SPEC §6): built-in defaults, then the config
 * file (parley.conf.lua, or the file PARLEY_CONFIG names), then the
 * environment. Every value is checked; a bad one is refused with its name.
 * The struct they fill is base/settings.h's, read by every layer. */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "base/settings.h"

/* Fills `c` from defaults, the config file and the environment, then the
 * command line (`--help`, `--version`). Returns 0 to run, 1 when the command
 * line asked only for help or the version (printed to stdout: not an
 * error), or -EINVAL with a message in `err` naming the setting at fault
 * (or the file that cannot be read, or the argument). Unless it returns 0,
 * `c` is released. Strings in `c` are its own until config_fini. */
int config_load(struct config *c, int argc, char **argv, char *err, size_t errlen);

/* Reads the defaults, the config file and the environment again (SIGHUP,
 * a change of the config file) and applies to `c` what may change while
 * parley runs: the scripts folder, the plugin list and path, the log level.
 * A changed setting that cannot (the port, the store, the limits) is named
 * in a warning and keeps its running value. Returns 0, or -EINVAL with a
 * message in `err` (a bad value, a broken file): `c` is then untouched. */
int config_reload(struct config *c, char *err, size_t errlen);

/* Releases the strings `c` owns and zeroes it; NULL is a no-op. */
void config_fini(struct config *c);

/* Prints every setting with its environment name, default and meaning. */
void config_usage(FILE *out);

#endif
