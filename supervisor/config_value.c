/* Command lines, environment lists and signal names: see config_value.h. */
#include "config_value.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const struct {
	const char *name;
	int sig;
} signals[] = {{"TERM", SIGTERM}, {"INT", SIGINT},   {"QUIT", SIGQUIT},
	       {"HUP", SIGHUP},   {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
	       {"KILL", SIGKILL}};

int config_parse_signal(const char *s)
{
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (strcmp(s, signals[i].name) == 0)
			return signals[i].sig;
	long long v;
	if (util_parse_int(s, 1, 64, &v) == 0)
		for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
			if (signals[i].sig == v)
				return (int)v;
	return -1;
}

const char *config_signal_name(int sig)
{
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (signals[i].sig == sig)
			return signals[i].name;
	return "?";
}

void config_free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static int strv_push(char ***v, int *n, const char *s, size_t len)
{
	char **nv = realloc(*v, sizeof(char *) * (*n + 2));
	if (!nv)
		return -1;
	*v = nv;
	if (!(nv[*n] = strndup(s, len)))
		return -1;
	nv[++*n] = NULL;
	return 0;
}

char **config_split_command(const char *s, char *err, size_t errlen)
{
	char **v = NULL, *word = malloc(strlen(s) + 1);
	int n = 0;

	if (!word)
		goto nomem;
	while (*s) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		size_t len = 0;
		char quote = 0;
		for (; *s && (quote || (*s != ' ' && *s != '\t')); s++) {
			if (quote && *s == quote)
				quote = 0;
			else if (!quote && (*s == '\'' || *s == '"'))
				quote = *s;
			else if (*s == '\\' && quote != '\'' && s[1])
				word[len++] = *++s;
			else
				word[len++] = *s;
		}
		if (quote) {
			snprintf(err, errlen, "unterminated %c quote in command", quote);
			goto fail;
		}
		if (strv_push(&v, &n, word, len))
			goto nomem;
	}
	if (n == 0) {
		snprintf(err, errlen, "command is empty");
		goto fail;
	}
	free(word);
	return v;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	free(word);
	config_free_strv(v);
	return NULL;
}

char **config_split_env(const char *s, char *err, size_t errlen)
{
	char **v = calloc(1, sizeof(char *));
	char *item = malloc(strlen(s) + 1);
	int n = 0;

	if (!v || !item)
		goto nomem;
	while (*s) {
		while (*s == ' ' || *s == '\t')
			s++;
		size_t len = 0, eq = 0;
		const char *k = s;
		while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		       *s == '_' || (s > k && *s >= '0' && *s <= '9'))
			item[len++] = *s++;
		if (len == 0 || *s != '=') {
			snprintf(err, errlen,
				 "environment: want KEY=VALUE[,KEY=VALUE...] with KEY of letters, digits and _, at '%.20s'",
				 k);
			goto fail;
		}
		eq = len;
		/* item is not NUL terminated yet: compare the key's bytes only. */
		if (eq >= 6 && memcmp(item, "BATON_", 6) == 0) {
			snprintf(err, errlen, "environment: %.*s is set by batond and cannot be overridden",
				 (int)eq, item);
			goto fail;
		}
		item[len++] = *s++;
		if (*s == '"') {
			for (s++; *s && *s != '"'; s++)
				item[len++] = (*s == '\\' && s[1]) ? *++s : *s;
			if (*s != '"') {
				snprintf(err, errlen, "environment: unterminated \" in %.*s",
					 (int)eq, item);
				goto fail;
			}
			s++;
		} else {
			while (*s && *s != ',')
				item[len++] = *s++;
			while (len > eq + 1 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
				len--;
		}
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s && *s != ',') {
			snprintf(err, errlen, "environment: expected ',' after %.*s", (int)eq, item);
			goto fail;
		}
		if (*s == ',')
			s++;
		if (strv_push(&v, &n, item, len))
			goto nomem;
	}
	free(item);
	return v;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	free(item);
	config_free_strv(v);
	return NULL;
}
