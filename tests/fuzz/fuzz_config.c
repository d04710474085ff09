/*
 * libFuzzer target for the INI configuration loader, supervisor/config.c.
 *
 * Each input is written to baton.ini in a private temporary directory
 * (made once per process under $TMPDIR, removed at exit; the file is
 * removed after each load) and loaded with config_load()
 * exactly as `batond -t` does.  Errors are expected; what must hold is:
 * the error text is NUL terminated in its buffer and one "file:line: "
 * line per error (as far as it fits), a failed load leaves nothing
 * allocated, and a successful one gives a configuration batond can use
 * (every listener feeds a defined program, every program has a command).
 * config_free() each time; LeakSanitizer checks that nothing is left.
 * The input also goes, as one value, through config_split_command() and
 * config_split_env(), whose results are checked.
 *
 * The loader only reads the system: user and group names are looked up
 * (getpwnam/getgrnam), paths are not touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ERRLEN 16384 /* as batond -t */

#define CHECK(cond)                                                             \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "fuzz_config: %s:%d: check failed: %s\n", \
				__FILE__, __LINE__, #cond);                     \
			abort();                                                \
		}                                                               \
	} while (0)

static char dir[PATH_MAX];
static char path[PATH_MAX];

static void cleanup(void)
{
	if (path[0])
		unlink(path);
	if (dir[0])
		rmdir(dir);
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/baton-fuzz-config.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "fuzz_config: mkdtemp %s: %s\n", dir, strerror(errno));
		abort();
	}
	snprintf(path, sizeof(path), "%s/baton.ini", dir);
	atexit(cleanup);
}

static void write_input(const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	while (size > 0) {
		ssize_t n = write(fd, data, size);
		CHECK(n > 0);
		data += n;
		size -= (size_t)n;
	}
	CHECK(close(fd) == 0);
}

static void check_errors(const char *err, int nerr)
{
	size_t len = strnlen(err, ERRLEN);
	CHECK(len < ERRLEN);
	CHECK(nerr > 0 ? len > 0 : len == 0);
	/* Each complete line names the file. */
	size_t plen = strlen(path);
	int lines = 0;
	for (const char *p = err; *p;) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			break; /* the last line was cut */
		CHECK(strncmp(p, path, plen) == 0 && p[plen] == ':');
		const char *msg = p + plen + 1;
		while (*msg >= '0' && *msg <= '9')
			msg++;
		CHECK(msg[0] == ':' && msg[1] == ' ');
		msg += 2;
		/* config.c reports every line inih refuses itself, so inih's
		 * own verdict means the two disagree on the syntax. */
		CHECK(strncmp(msg, "syntax error (want [section]", 28) != 0);
		CHECK(strncmp(msg, "read error", 10) != 0);
		lines++;
		p = nl + 1;
	}
	CHECK(lines <= nerr);
}

static void check_config(const struct config *c)
{
	CHECK(strcmp(c->path, path) == 0);
	CHECK(c->nlisteners >= 0 && c->nprograms >= 0);
	CHECK(c->baton.control[0] == '/');
	for (int i = 0; i < c->nlisteners; i++) {
		const struct cfg_listener *l = &c->listeners[i];
		CHECK(memchr(l->name, 0, sizeof(l->name)) && l->name[0]);
		CHECK(memchr(l->address, 0, sizeof(l->address)));
		CHECK(l->addr.kind == ADDR_TCP || l->addr.kind == ADDR_UNIX);
		int found = 0;
		for (int j = 0; j < c->nprograms; j++)
			found |= strcmp(c->programs[j].name, l->program) == 0;
		CHECK(found);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(c->listeners[j].name, l->name) != 0);
	}
	for (int i = 0; i < c->nprograms; i++) {
		const struct cfg_program *p = &c->programs[i];
		CHECK(memchr(p->name, 0, sizeof(p->name)) && p->name[0]);
		CHECK(p->argv && p->argv[0]);
		for (char **e = p->env; e && *e; e++)
			CHECK(strchr(*e, '='));
		CHECK(p->workers >= 0 && p->workers <= 1024);
		CHECK(p->capacity >= 1);
		CHECK(p->backoff <= p->backoff_max);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(c->programs[j].name, p->name) != 0);
	}
}

/* Each KEY=VALUE has a KEY of letters, digits and _ (not first), and no
 * KEY starting with BATON_: those are batond's. */
static int env_key_ok(const char *kv)
{
	size_t k = 0;
	while ((kv[k] >= 'A' && kv[k] <= 'Z') || (kv[k] >= 'a' && kv[k] <= 'z') ||
	       kv[k] == '_' || (k > 0 && kv[k] >= '0' && kv[k] <= '9'))
		k++;
	return k > 0 && kv[k] == '=' && !(k >= 6 && strncmp(kv, "BATON_", 6) == 0);
}

/* The two value splitters config.h exports, on the input as one value. */
static void split_value(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), msg[256];
	CHECK(s);
	memcpy(s, data, size);
	s[size] = '\0';

	msg[0] = '\0';
	char **v = config_split_command(s, msg, sizeof(msg));
	if (v) {
		CHECK(v[0]);
		for (char **w = v; *w; w++)
			CHECK(strlen(*w) <= strlen(s));
		config_free_strv(v);
	} else {
		CHECK(msg[0]);
	}

	msg[0] = '\0';
	v = config_split_env(s, msg, sizeof(msg));
	if (v) {
		for (char **e = v; *e; e++)
			CHECK(env_key_ok(*e));
		config_free_strv(v);
	} else {
		CHECK(msg[0]);
		/* "environment: KEY is set by batond and cannot be
		 * overridden" only for BATON_ keys. */
		static const char tail[] = " is set by batond and cannot be overridden";
		if (strncmp(msg, "environment: ", 13) == 0) {
			const char *k = msg + 13, *e = k;
			while ((*e >= 'A' && *e <= 'Z') || (*e >= 'a' && *e <= 'z') ||
			       (*e >= '0' && *e <= '9') || *e == '_')
				e++;
			if (strcmp(e, tail) == 0)
				CHECK(e - k >= 6 && strncmp(k, "BATON_", 6) == 0);
		}
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char err[ERRLEN];
	struct config cfg;

	if (!dir[0])
		setup();
	write_input(data, size);
	int n = config_load(path, &cfg, err, sizeof(err));
	CHECK(n >= 0);
	check_errors(err, n);
	if (n) {
		/* "on a non-zero return cfg holds nothing" */
		CHECK(!cfg.listeners && !cfg.programs);
		CHECK(cfg.nlisteners == 0 && cfg.nprograms == 0);
	} else {
		check_config(&cfg);
	}
	config_free(&cfg);
	/* Gone at once, so a crash leaves at most the empty directory. */
	unlink(path);
	split_value(data, size);
	return 0;
}
