/*
 * Value syntax the config shares with the supervisor: command lines,
 * environment lists, signal names.
 */
#ifndef BATON_CONFIG_VALUE_H
#define BATON_CONFIG_VALUE_H

#include <stddef.h>

/* Split a command line: words, '...' and "..." quoting, \ escapes. */
char **config_split_command(const char *s, char *err, size_t errlen);
/* Parse "K=V,K2=\"v,2\"" into a NULL-terminated KEY=VALUE array. */
char **config_split_env(const char *s, char *err, size_t errlen);
void config_free_strv(char **v);
/* "TERM", "SIGTERM", "15" -> signal number; -1 if unknown. */
int config_parse_signal(const char *s);
const char *config_signal_name(int sig);

#endif
