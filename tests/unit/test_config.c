/*
 * config_load() against files the tests write into their own mkdtemp
 * directory, plus the small parsers config.h exports.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "batond.h"
#include "config.h"
#include "config_keys.h"

#define ERRLEN 8192

struct ctx {
	char dir[64];       /* as created (mkdtemp) */
	char real[PATH_MAX]; /* realpath(dir): what %(here)s expands to */
	char path[PATH_MAX]; /* dir/baton.ini */
	int nfds;
	struct config cfg;
	char err[ERRLEN];
};

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->nfds = count_fds();
	strcpy(c->dir, "/tmp/baton-test-config-XXXXXX");
	if (!mkdtemp(c->dir) || !realpath(c->dir, c->real)) {
		free(c);
		return -1;
	}
	snprintf(c->path, sizeof(c->path), "%s/baton.ini", c->dir);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	config_free(&c->cfg);
	int rc = nftw(c->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	int leaked = count_fds() != c->nfds;
	if (leaked)
		print_error("fd leak: %d open before, %d after\n", c->nfds, count_fds());
	free(c);
	return rc || leaked ? -1 : 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Write text as the context's baton.ini and load it. */
static int load(struct ctx *c, const char *text)
{
	config_free(&c->cfg);
	write_file(c->path, text);
	memset(c->err, 'X', sizeof(c->err)); /* must be overwritten */
	return config_load(c->path, &c->cfg, c->err, sizeof(c->err));
}

/* Is there an error line "path:line: ..." that contains word? */
static int has_err(const char *err, const char *path, int line, const char *word)
{
	char prefix[PATH_MAX + 32];
	size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	for (const char *s = err; *s;) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);
		if (len >= plen && memcmp(s, prefix, plen) == 0) {
			char buf[1024];
			snprintf(buf, sizeof(buf), "%.*s", (int)len, s);
			if (strstr(buf + plen, word))
				return 1;
		}
		s += len + (nl ? 1 : 0);
	}
	return 0;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void assert_empty_cfg(const struct config *cfg)
{
	assert_null(cfg->listeners);
	assert_null(cfg->programs);
	assert_int_equal(cfg->nlisteners, 0);
	assert_int_equal(cfg->nprograms, 0);
}

/* ---- a full file: every key of every section set to a non-default ---- */

static const char full_ini[] =
	"; every key, none at its default\n"                 /* 1 */
	"[baton]\n"                                          /* 2 */
	"control = %(here)s/ctl.sock\n"                      /* 3 */
	"control_mode = 0660\n"                              /* 4 */
	"control_group = root\n"                             /* 5 */
	"log_level = debug\n"                                /* 6 */
	"batch_scheduling = no\n"                            /* 7 */
	"[listener:web]\n"                                   /* 8 */
	"address = tcp:127.0.0.1:8080\n"                     /* 9 */
	"program = app\n"                                    /* 10 */
	"backlog = 128\n"                                    /* 11 */
	"tcp_nodelay = no\n"                                 /* 12 */
	"tcp_keepalive = yes\n"                              /* 13 */
	"tcp_keepidle = 30s\n"                               /* 14 */
	"tcp_keepintvl = 5s\n"                               /* 15 */
	"tcp_keepcnt = 4\n"                                  /* 16 */
	"tcp_user_timeout = 2m\n"                            /* 17 */
	"\n"                                                 /* 18 */
	"[listener:sock]\n"                                  /* 19 */
	"address = unix:%(here)s/app.sock\n"                 /* 20 */
	"program = app\n"                                    /* 21 */
	"mode = 0640\n"                                      /* 22 */
	"owner = root:root\n"                                /* 23 */
	"\n"                                                 /* 24 */
	"[listener:v6]\n"                                    /* 25 */
	"address = [::1]:9090\n"                             /* 26 */
	"program = other\n"                                  /* 27 */
	"\n"                                                 /* 28 */
	"[program:app]\n"                                    /* 29 */
	"command = /usr/bin/env \"arg one\" 'single q' plain\\ esc\n"
	"workers = 4\n"
	"directory = %(here)s\n"
	"environment = A=1,B=\"x,y\",C_3=hello world\n"
	"user = root\n"
	"ready_timeout = 3s\n"
	"drain_timeout = 1m\n"
	"stop_timeout = 1500ms\n"
	"queue_timeout = 250ms\n"
	"stop_signal = SIGINT\n"
	"restart = on-failure\n"
	"backoff = 200ms\n"
	"backoff_max = 1h\n"
	"start_retries = 7\n"
	"start_window = 2s\n"
	"capacity = 64\n"
	"upgrade_batch = 2\n"
	"\n"
	"[program:other]\n" /* 48 */
	"command=/bin/cat\n"
	"stop_signal = 9\n"
	"restart = never\n"
	"workers = 0\n"
	"heartbeat_timeout = 0\n";

static void test_full_valid(void **state)
{
	struct ctx *c = *state;
	char want[PATH_MAX + 64];

	int n = load(c, full_ini);
	if (n)
		fail_msg("unexpected errors:\n%s", c->err);
	assert_string_equal(c->err, "");
	struct config *cfg = &c->cfg;
	assert_string_equal(cfg->path, c->path);

	/* [baton] */
	snprintf(want, sizeof(want), "%s/ctl.sock", c->real);
	assert_string_equal(cfg->baton.control, want);
	assert_int_equal(cfg->baton.control_mode, 0660);
	assert_string_equal(cfg->baton.control_group, "root");
	assert_int_equal(cfg->baton.log_level, LOGL_DEBUG);
	assert_int_equal(cfg->baton.batch_scheduling, 0);

	assert_int_equal(cfg->nlisteners, 3);
	assert_int_equal(cfg->nprograms, 2);

	/* [listener:web] */
	struct cfg_listener *l = &cfg->listeners[0];
	assert_string_equal(l->name, "web");
	assert_int_equal(l->line, 8);
	assert_string_equal(l->address, "tcp:127.0.0.1:8080");
	assert_int_equal(l->addr.kind, ADDR_TCP);
	const struct sockaddr_in *in = (const void *)&l->addr.ss;
	assert_int_equal(in->sin_family, AF_INET);
	assert_int_equal(ntohs(in->sin_port), 8080);
	assert_int_equal(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(l->addr.len, sizeof(struct sockaddr_in));
	assert_string_equal(l->program, "app");
	assert_int_equal(l->backlog, 128);
	assert_int_equal(l->tcp_nodelay, 0);
	assert_int_equal(l->tcp_keepalive, 1);
	assert_int_equal(l->tcp_keepidle, 30000);
	assert_int_equal(l->tcp_keepintvl, 5000);
	assert_int_equal(l->tcp_keepcnt, 4);
	assert_int_equal(l->tcp_user_timeout, 120000);

	/* [listener:sock] */
	l = &cfg->listeners[1];
	assert_string_equal(l->name, "sock");
	assert_int_equal(l->line, 19);
	assert_int_equal(l->addr.kind, ADDR_UNIX);
	const struct sockaddr_un *un = (const void *)&l->addr.ss;
	assert_int_equal(un->sun_family, AF_UNIX);
	snprintf(want, sizeof(want), "%s/app.sock", c->real);
	assert_string_equal(un->sun_path, want);
	snprintf(want, sizeof(want), "unix:%s/app.sock", c->real);
	assert_string_equal(l->address, want);
	assert_int_equal(l->mode, 0640);
	assert_string_equal(l->owner, "root:root");

	/* [listener:v6] */
	l = &cfg->listeners[2];
	assert_string_equal(l->name, "v6");
	assert_int_equal(l->addr.kind, ADDR_TCP);
	const struct sockaddr_in6 *in6 = (const void *)&l->addr.ss;
	assert_int_equal(in6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(in6->sin6_port), 9090);
	assert_memory_equal(&in6->sin6_addr, &in6addr_loopback, sizeof(in6addr_loopback));
	assert_string_equal(l->program, "other");

	/* [program:app] */
	struct cfg_program *p = config_program(cfg, "app");
	assert_ptr_equal(p, &cfg->programs[0]);
	assert_int_equal(p->line, 29);
	assert_non_null(p->argv);
	assert_string_equal(p->argv[0], "/usr/bin/env");
	assert_string_equal(p->argv[1], "arg one");
	assert_string_equal(p->argv[2], "single q");
	assert_string_equal(p->argv[3], "plain esc");
	assert_null(p->argv[4]);
	assert_int_equal(p->workers, 4);
	assert_string_equal(p->directory, c->real);
	assert_non_null(p->env);
	assert_string_equal(p->env[0], "A=1");
	assert_string_equal(p->env[1], "B=x,y");
	assert_string_equal(p->env[2], "C_3=hello world");
	assert_null(p->env[3]);
	assert_string_equal(p->user, "root");
	assert_int_equal(p->ready_timeout, 3000);
	assert_int_equal(p->drain_timeout, 60000);
	assert_int_equal(p->stop_timeout, 1500);
	assert_int_equal(p->queue_timeout, 250);
	assert_int_equal(p->stop_signal, SIGINT);
	assert_int_equal(p->restart, RESTART_ON_FAILURE);
	assert_int_equal(p->backoff, 200);
	assert_int_equal(p->backoff_max, 3600000);
	assert_int_equal(p->start_retries, 7);
	assert_int_equal(p->start_window, 2000);
	assert_int_equal(p->capacity, 64);
	assert_int_equal(p->upgrade_batch, 2);

	/* [program:other] */
	p = config_program(cfg, "other");
	assert_ptr_equal(p, &cfg->programs[1]);
	assert_int_equal(p->line, 48);
	assert_string_equal(p->argv[0], "/bin/cat");
	assert_null(p->argv[1]);
	assert_int_equal(p->stop_signal, SIGKILL);
	assert_int_equal(p->heartbeat_timeout, 0);
	assert_int_equal(p->restart, RESTART_NEVER);
	assert_int_equal(p->workers, 0);

	assert_null(config_program(cfg, "nope"));
	assert_null(config_program(cfg, ""));
}

static void test_defaults(void **state)
{
	struct ctx *c = *state;
	int n = load(c, "[listener:l]\n"
			"address = tcp:*:0\n"
			"program = p\n"
			"[program:p]\n"
			"command = /bin/true\n");
	if (n)
		fail_msg("unexpected errors:\n%s", c->err);
	struct config *cfg = &c->cfg;

	assert_string_equal(cfg->baton.control, "/run/baton/batond.sock");
	assert_int_equal(cfg->baton.control_mode, 0600);
	assert_string_equal(cfg->baton.control_group, "");
	assert_int_equal(cfg->baton.log_level, LOGL_INFO);
	assert_int_equal(cfg->baton.batch_scheduling, 1);
	assert_string_equal(cfg->baton.http, "");
	assert_string_equal(cfg->baton.log_file, "");

	assert_int_equal(cfg->nlisteners, 1);
	struct cfg_listener *l = &cfg->listeners[0];
	const struct sockaddr_in *in = (const void *)&l->addr.ss;
	assert_int_equal(in->sin_family, AF_INET);
	assert_int_equal(in->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(in->sin_port, 0);
	assert_int_equal(l->backlog, 511);
	assert_int_equal(l->mode, 0666);
	assert_string_equal(l->owner, "");
	assert_int_equal(l->tcp_nodelay, 1);
	assert_int_equal(l->tcp_keepalive, 0);
	assert_int_equal(l->tcp_keepidle, 0);
	assert_int_equal(l->tcp_keepintvl, 0);
	assert_int_equal(l->tcp_keepcnt, 0);
	assert_int_equal(l->tcp_user_timeout, 0);
	assert_int_equal(l->tcp_defer_accept, 0); /* off by default */

	assert_int_equal(cfg->nprograms, 1);
	struct cfg_program *p = &cfg->programs[0];
	assert_string_equal(p->name, "p");
	assert_int_equal(p->workers, 1);
	assert_string_equal(p->directory, "");
	assert_string_equal(p->environment, "");
	assert_non_null(p->env);
	assert_null(p->env[0]);
	assert_string_equal(p->user, "");
	assert_int_equal(p->ready_timeout, 10000);
	assert_int_equal(p->drain_timeout, 30000);
	assert_int_equal(p->stop_timeout, 10000);
	assert_int_equal(p->queue_timeout, 5000);
	assert_int_equal(p->heartbeat_timeout, 10000);
	assert_string_equal(p->stdout_to, "log");
	assert_string_equal(p->stderr_to, "log");
	assert_int_equal(p->stop_signal, SIGTERM);
	assert_int_equal(p->restart, RESTART_ALWAYS);
	assert_int_equal(p->backoff, 500);
	assert_int_equal(p->backoff_max, 30000);
	assert_int_equal(p->start_retries, 5);
	assert_int_equal(p->start_window, 1000);
	assert_int_equal(p->capacity, 1024);
	assert_int_equal(p->upgrade_batch, 1);
}

static void test_empty_file(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(load(c, ""), 0);
	assert_string_equal(c->err, "");
	assert_empty_cfg(&c->cfg);
	assert_string_equal(c->cfg.baton.control, "/run/baton/batond.sock");
	assert_int_equal(load(c, "; only a comment\n# and another\n\n[baton]\n"), 0);
	assert_empty_cfg(&c->cfg);
}

/* Windows line ends, ':' as the separator, comments: still the same file. */
static void test_syntax_variants(void **state)
{
	struct ctx *c = *state;
	int n = load(c, "; comment\r\n"
			"# comment\r\n"
			"[program:p]\r\n"
			"command: /bin/echo hi\r\n"
			"workers = 3 ; inline comment\r\n"
			"  \r\n");
	if (n)
		fail_msg("unexpected errors:\n%s", c->err);
	struct cfg_program *p = config_program(&c->cfg, "p");
	assert_non_null(p);
	assert_string_equal(p->argv[0], "/bin/echo");
	assert_string_equal(p->argv[1], "hi");
	assert_null(p->argv[2]);
	assert_int_equal(p->workers, 3);
}

static void test_here(void **state)
{
	struct ctx *c = *state;
	char sub[PATH_MAX], path[PATH_MAX], want[PATH_MAX + 64];

	snprintf(sub, sizeof(sub), "%s/sub", c->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	/* A path with "." and ".." parts: %(here)s is the resolved directory. */
	snprintf(path, sizeof(path), "%s/./sub/../sub/app.ini", c->dir);
	write_file(path, "[program:p]\n"
			 "command = %(here)s/bin/w --conf=%(here)s/c.conf\n"
			 "directory = %(here)s/x\n"
			 "environment = HOME=%(here)s,LIT=%(there)s\n");
	int n = config_load(path, &c->cfg, c->err, sizeof(c->err));
	if (n)
		fail_msg("unexpected errors:\n%s", c->err);
	struct cfg_program *p = config_program(&c->cfg, "p");
	assert_non_null(p);
	snprintf(want, sizeof(want), "%s/sub/bin/w", c->real);
	assert_string_equal(p->argv[0], want);
	snprintf(want, sizeof(want), "--conf=%s/sub/c.conf", c->real);
	assert_string_equal(p->argv[1], want);
	snprintf(want, sizeof(want), "%s/sub/x", c->real);
	assert_string_equal(p->directory, want);
	snprintf(want, sizeof(want), "HOME=%s/sub", c->real);
	assert_string_equal(p->env[0], want);
	assert_string_equal(p->env[1], "LIT=%(there)s"); /* only %(here)s expands */
	assert_null(p->env[2]);
}

/* ---- bad input: one table, each row a file with its expected errors ---- */

#define PROG "[program:p]\ncommand = /bin/true\n"                      /* 2 lines */
#define LIS "[listener:l]\naddress = tcp:127.0.0.1:8000\nprogram = p\n" /* 3 lines */
#define ULIS "[listener:u]\naddress = unix:/tmp/baton-test.sock\nprogram = p\n"

struct bad {
	const char *what;
	const char *text;
	int count; /* config_load's return */
	int line;  /* of the first expected error */
	const char *word;
	int line2; /* a second expected error, 0: none */
	const char *word2;
};

/* Rows leave line2/word2 out when there is one error to look for. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct bad bad_cases[] = {
	/* structure */
	{"unknown key", PROG "foo = 1\n", 1, 3, "unknown key 'foo'"},
	{"unknown key in [baton]", "[baton]\nlevel = info\n", 1, 2, "unknown key 'level'"},
	{"listener key in a program", PROG "backlog = 5\n", 1, 3, "unknown key 'backlog'"},
	{"unknown section", PROG "[frob]\nx = 1\ny = 2\n", 1, 3, "unknown section [frob]"},
	{"unknown section kind", "[worker:w]\ncommand = x\n", 1, 1, "unknown section"},
	{"key outside any section", "workers = 2\n" PROG, 1, 1, "outside any section"},
	{"duplicate key", PROG "workers = 2\nworkers = 3\n", 1, 4, "set twice"},
	{"continuation line", PROG "  --flag\n", 1, 3, "set twice"},
	{"duplicate program", PROG "[program:p]\ncommand = /bin/false\nworkers = 2\n", 1, 3,
	 "already defined at line 1"},
	{"duplicate listener", PROG LIS "[listener:l]\naddress = tcp:127.0.0.1:8001\nprogram = p\n",
	 1, 6, "already defined at line 3"},
	{"duplicate [baton]", "[baton]\nlog_level = warn\n[baton]\n", 1, 3, "twice"},
	{"bad section name", "[program:bad name]\ncommand = x\n", 1, 1, "bad section name"},
	{"empty section name", PROG "[listener:]\naddress = tcp:*:1\n", 1, 3, "bad section name"},
	{"section name with /", "[program:a/b]\ncommand = x\n", 1, 1, "bad section name"},
	{"section name of 32", "[program:abcdefghijklmnopqrstuvwxyz012345]\ncommand = x\n", 1, 1,
	 "bad section name"},
	{"syntax error", PROG "this line has no equals sign\n", 1, 3, "syntax error"},
	{"unclosed section", PROG "[program:q\n", 1, 3, "syntax error"},

	/* integers */
	{"int not a number", PROG "workers = many\n", 1, 3, "whole number from 0 to 1024"},
	{"int trailing junk", PROG "workers = 12abc\n", 1, 3, "whole number"},
	{"int empty", PROG "workers =\n", 1, 3, "whole number"},
	{"int above max", PROG "workers = 1025\n", 1, 3, "whole number from 0 to 1024"},
	{"int below min", PROG "start_retries = -1\n", 1, 3, "whole number"},
	{"int capacity 0", PROG "capacity = 0\n", 1, 3, "from 1 to 1000000"},
	{"int upgrade_batch", PROG "upgrade_batch = 1025\n", 1, 3, "whole number"},
	{"int huge", PROG "capacity = 99999999999999999999999\n", 1, 3, "whole number"},
	{"int backlog 0", LIS "backlog = 0\n" PROG, 1, 4, "from 1 to 65535"},
	{"int backlog big", "[listener:l]\nbacklog = 65536\naddress = tcp:*:1\nprogram = p\n" PROG,
	 1, 2, "from 1 to 65535"},
	{"int keepcnt", "[listener:l]\naddress = tcp:*:1\nprogram = p\ntcp_keepcnt = 128\n" PROG,
	 1, 4, "from 0 to 127"},
	/* booleans */
	{"bool", LIS "tcp_nodelay = maybe\n" PROG, 1, 4, "yes or no"},
	{"bool keepalive", LIS "tcp_keepalive = 2\n" PROG, 1, 4, "yes or no"},
	/* durations */
	{"duration without unit", PROG "ready_timeout = 10\n", 1, 3, "duration"},
	{"duration bad unit", PROG "ready_timeout = 10sec\n", 1, 3, "duration"},
	{"duration days", PROG "drain_timeout = 1d\n", 1, 3, "duration"},
	{"duration negative", PROG "stop_timeout = -1s\n", 1, 3, "duration"},
	{"duration not a number", PROG "queue_timeout = soon\n", 1, 3, "duration"},
	{"duration above max", PROG "ready_timeout = 2h\n", 1, 3, "from 1ms to 1h"},
	{"duration below min", PROG "queue_timeout = 0\n", 1, 3, "from 1ms to 1h"},
	{"stdout bad", PROG "stdout = syslog\n", 1, 3, "stdout: want log, inherit or an absolute path, got 'syslog'"},
	{"stderr relative", PROG "stderr = err.log\n", 1, 3, "stderr: want log, inherit or an absolute path"},
	{"heartbeat above max", PROG "heartbeat_timeout = 61m\n", 1, 3, "duration from 0 to 1h"},
	{"heartbeat bad unit", PROG "heartbeat_timeout = 5 s\n", 1, 3, "duration"},
	{"duration drain max", PROG "drain_timeout = 25h\n", 1, 3, "duration from 0 to 24h"},
	{"duration keepidle max", LIS "tcp_keepidle = 10h\n" PROG, 1, 4, "duration"},
	{"duration defer accept max", LIS "tcp_defer_accept = 2h\n" PROG, 1, 4, "duration"},
	{"duration defer accept negative", LIS "tcp_defer_accept = -1s\n" PROG, 1, 4, "duration"},
	{"duration overflow", PROG "backoff = 99999999999999999999ms\n", 1, 3, "duration"},
	/* modes */
	{"mode not octal", "[baton]\ncontrol_mode = 0899\n", 1, 2, "octal file mode"},
	{"mode symbolic", "[baton]\ncontrol_mode = rw-------\n", 1, 2, "octal file mode"},
	{"umask above 0777", PROG "umask = 01022\n", 1, 3, "umask: '01022' is more than 0777"},
	{"umask not octal", PROG "umask = 022x\n", 1, 3, "octal file mode"},
	{"ack_timeout above max", PROG "ack_timeout = 2h\n", 1, 3, "duration from 0 to 1h"},
	{"log_file relative", "[baton]\nlog_file = logs/batond.log\n", 1, 2, "log_file: want an absolute path"},
	{"http unix", "[baton]\nhttp = unix:/tmp/m.sock\n", 1, 2, "http: the HTTP endpoint takes a TCP address"},
	{"http bad host", "[baton]\nhttp = tcp:example.com:80\n", 1, 2, "http: "},
	{"http bad port", "[baton]\nhttp = tcp:127.0.0.1:65536\n", 1, 2, "http: "},
	{"mode too big", ULIS "mode = 017777\n" PROG, 1, 4, "octal file mode"},
	/* signals */
	{"unknown signal", PROG "stop_signal = SIGFOO\n", 1, 3, "is not one of TERM"},
	{"signal not in list", PROG "stop_signal = 11\n", 1, 3, "not one of"},
	{"signal out of range", PROG "stop_signal = 99\n", 1, 3, "not one of"},
	{"signal empty", PROG "stop_signal =\n", 1, 3, "not one of"},
	/* restart, log level */
	{"restart policy", PROG "restart = sometimes\n", 1, 3, "always, on-failure or never"},
	{"restart underscore", PROG "restart = on_failure\n", 1, 3, "on-failure"},
	{"log level", "[baton]\nlog_level = verbose\n", 1, 2, "debug, info, warn or error"},
	/* addresses */
	{"address without kind", "[listener:l]\naddress = 127.0.0.1:80\nprogram = p\n" PROG, 1, 2,
	 "address"},
	{"address bad ipv4", "[listener:l]\naddress = tcp:256.1.1.1:80\nprogram = p\n" PROG, 1, 2,
	 "IPv4"},
	{"address bad port", "[listener:l]\naddress = tcp:127.0.0.1:70000\nprogram = p\n" PROG, 1,
	 2, "port"},
	{"address no port", "[listener:l]\naddress = tcp:127.0.0.1\nprogram = p\n" PROG, 1, 2,
	 "address"},
	{"address relative unix", "[listener:l]\naddress = unix:run/x.sock\nprogram = p\n" PROG, 1,
	 2, "absolute"},
	{"address bad ipv6", "[listener:l]\naddress = [::g]:80\nprogram = p\n" PROG, 1, 2, "IPv6"},
	{"address ipv6 no port", "[listener:l]\naddress = tcp:[::1]80\nprogram = p\n" PROG, 1, 2,
	 "IPv6"},
	{"address empty", "[listener:l]\naddress =\nprogram = p\n" PROG, 1, 2, "address"},
	/* names */
	{"value too long", PROG "user = abcdefghijklmnopqrstuvwxyz0123456789\n", 1, 3,
	 "too long"},
	/* commands */
	{"empty command", "[program:p]\ncommand =\n", 1, 2, "command is empty"},
	{"blank command", "[program:p]\ncommand = '' x\nworkers = 1\n[program:q]\ncommand = \t\n",
	 1, 5, "command is empty"},
	{"unterminated ' in command", "[program:p]\ncommand = /bin/echo 'abc\n", 1, 2,
	 "unterminated ' quote"},
	{"unterminated \" in command", "[program:p]\ncommand = /bin/echo \"abc\n", 1, 2,
	 "unterminated \" quote"},
	/* environment */
	{"env no key", PROG "environment = A=1,=2\n", 1, 3, "environment"},
	{"env digit key", PROG "environment = 1A=2\n", 1, 3, "KEY=VALUE"},
	{"env no =", PROG "environment = A\n", 1, 3, "KEY=VALUE"},
	{"env unterminated", PROG "environment = A=\"x\n", 1, 3, "unterminated"},
	{"env junk after quote", PROG "environment = A=\"x\"y\n", 1, 3, "expected ','"},
	{"env empty item", PROG "environment = A=1,,B=2\n", 1, 3, "environment"},
	{"env sets BATON_", PROG "environment = A=1,BATON_FD=4\n", 1, 3, "set by batond"},

	/* cross-checks, reported at the section header */
	{"undefined program", PROG "[listener:l]\naddress = tcp:127.0.0.1:0\nprogram = nope\n", 1,
	 3, "feeds program 'nope', which is not defined"},
	{"listener needs address and program", "[listener:l]\nbacklog = 5\n" PROG, 2, 1,
	 "needs 'address'", 1, "needs 'program'"},
	{"program needs command", PROG "[program:q]\nworkers = 2\nuser = root\n", 1, 3,
	 "[program:q] needs 'command'"},
	{"tcp keys on unix", ULIS "tcp_nodelay = yes\ntcp_keepcnt = 3\n" PROG, 2, 1,
	 "'tcp_nodelay' applies only to TCP", 1, "'tcp_keepcnt' applies only to TCP"},
	{"all tcp keys on unix",
	 PROG ULIS "tcp_nodelay = yes\ntcp_keepalive = yes\ntcp_keepidle = 1s\n"
		   "tcp_keepintvl = 1s\ntcp_keepcnt = 3\ntcp_user_timeout = 1s\ntcp_defer_accept = 1s\n",
	 7, 3, "'tcp_keepalive' applies only to TCP", 3, "'tcp_defer_accept' applies only"},
	{"mode on tcp", LIS "mode = 0600\n" PROG, 1, 1, "only to unix"},
	{"owner on tcp", PROG LIS "owner = root\n", 1, 3, "only to unix"},
	{"backoff_max < backoff", PROG "backoff = 10s\nbackoff_max = 5s\n", 1, 1,
	 "backoff_max is less than backoff"},
	{"backoff above default max", PROG "backoff = 1m\n", 1, 1, "backoff_max"},
	{"same tcp address", PROG LIS "[listener:m]\naddress = tcp:127.0.0.1:8000\nprogram = p\n",
	 1, 6, "same address as [listener:l]"},
	{"same tcp address, * and 0.0.0.0",
	 PROG "[listener:a]\naddress = tcp:*:81\nprogram = p\n"
	      "[listener:b]\naddress = tcp:0.0.0.0:81\nprogram = p\n",
	 1, 6, "same address as [listener:a]"},
	{"same v6 address",
	 PROG "[listener:a]\naddress = [::1]:81\nprogram = p\n"
	      "[listener:b]\naddress = tcp:[::1]:81\nprogram = p\n",
	 1, 6, "same address"},
	{"same unix address", PROG ULIS "[listener:v]\naddress = unix:/tmp/baton-test.sock\nprogram = p\n",
	 1, 6, "same address as [listener:u]"},
	{"unknown user", PROG "user = baton_no_such_user\n", 1, 1, "no such user 'baton_no_such_user'"},
	{"unknown owner user", ULIS "owner = baton_no_such_user\n" PROG, 1, 1, "no such user"},
	{"unknown owner group", ULIS "owner = root:baton_no_such_group\n" PROG, 1, 1,
	 "no such group 'baton_no_such_group'"},
	{"unknown control_group", "[baton]\ncontrol_group = baton_no_such_group\n", 1, 2,
	 "no such group"},
};
#pragma GCC diagnostic pop

static void test_bad_input(void **state)
{
	struct ctx *c = *state;
	int failed = 0;

	/* Every row is checked; the failures are listed together. */
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad *b = &bad_cases[i];
		int n = load(c, b->text);
		int ok = 1;
		if (n != b->count) {
			print_error("%s: %d errors, want %d\n", b->what, n, b->count);
			ok = 0;
		}
		if (count_lines(c->err) != b->count) {
			print_error("%s: %d error lines, want %d\n", b->what,
				    count_lines(c->err), b->count);
			ok = 0;
		}
		if (!has_err(c->err, c->path, b->line, b->word)) {
			print_error("%s: want '%s:%d: ...%s...'\n", b->what, c->path,
				    b->line, b->word);
			ok = 0;
		}
		if (b->line2 && !has_err(c->err, c->path, b->line2, b->word2)) {
			print_error("%s: want '%s:%d: ...%s...'\n", b->what, c->path,
				    b->line2, b->word2);
			ok = 0;
		}
		if (c->cfg.listeners || c->cfg.programs || c->cfg.nlisteners ||
		    c->cfg.nprograms) {
			print_error("%s: cfg not empty after errors\n", b->what);
			ok = 0;
		}
		if (!ok) {
			print_error("  got:\n%s", c->err);
			failed++;
		}
	}
	if (failed)
		fail_msg("%d of %zu bad-input cases failed", failed,
			 sizeof(bad_cases) / sizeof(bad_cases[0]));
}

/* Port 0 (pick one) twice is not a clash; neither are distinct addresses. */
static void test_no_false_clash(void **state)
{
	struct ctx *c = *state;
	int n = load(c, PROG "[listener:a]\naddress = tcp:127.0.0.1:0\nprogram = p\n"
			     "[listener:b]\naddress = tcp:127.0.0.1:0\nprogram = p\n"
			     "[listener:c]\naddress = tcp:127.0.0.1:82\nprogram = p\n"
			     "[listener:d]\naddress = tcp:127.0.0.2:82\nprogram = p\n"
			     "[listener:e]\naddress = [::1]:82\nprogram = p\n"
			     "[listener:f]\naddress = unix:/tmp/a.sock\nprogram = p\n"
			     "[listener:g]\naddress = unix:/tmp/b.sock\nprogram = p\n");
	if (n)
		fail_msg("unexpected errors:\n%s", c->err);
	assert_int_equal(c->cfg.nlisteners, 7);
}

static void test_long_line(void **state)
{
	struct ctx *c = *state;
	char text[1024], pad[300];

	memset(pad, 'x', 250);
	pad[250] = '\0';
	/* A comment, so the line is fine but for its length. */
	snprintf(text, sizeof(text), PROG "# %s\nfoo = 1\n", pad);
	int n = load(c, text);
	assert_int_equal(n, 2);
	if (!has_err(c->err, c->path, 3, "longer than"))
		fail_msg("no long-line error at line 3:\n%s", c->err);
	/* The lines after it keep their numbers. */
	if (!has_err(c->err, c->path, 4, "unknown key 'foo'"))
		fail_msg("no error at line 4:\n%s", c->err);
	assert_empty_cfg(&c->cfg);

	/* A long value is not half-parsed: only the length is reported. */
	snprintf(text, sizeof(text), PROG "environment = A=%s\n", pad);
	assert_int_equal(load(c, text), 1);
	assert_true(has_err(c->err, c->path, 3, "longer than"));
}

/* The limit the message states is the limit applied. */
static void test_long_line_limit(void **state)
{
	struct ctx *c = *state;
	char text[1024], pad[400];
	int limit = -1;

	memset(pad, 'x', 300);
	pad[300] = '\0';
	snprintf(text, sizeof(text), "#%s\n", pad);
	assert_int_equal(load(c, text), 1);
	const char *m = strstr(c->err, "longer than ");
	assert_non_null(m);
	assert_int_equal(sscanf(m, "longer than %d", &limit), 1);
	assert_true(limit > 100 && limit < 300);

	/* A comment line of exactly `limit` characters (its '\n' not counted),
	 * also with a Windows line end, then one more character. */
	memset(pad, 'x', sizeof(pad));
	snprintf(text, sizeof(text), "#%.*s\n", limit - 1, pad);
	int n = load(c, text);
	if (n != 0)
		fail_msg("a %d-character line is refused although the limit is %d:\n%s",
			 limit, limit, c->err);
	snprintf(text, sizeof(text), "#%.*s\r\n", limit - 1, pad);
	n = load(c, text);
	if (n != 0)
		fail_msg("a %d-character CRLF line is refused although the limit is %d:\n%s",
			 limit, limit, c->err);
	/* The last line may lack its '\n'. */
	snprintf(text, sizeof(text), "#%.*s", limit - 1, pad);
	assert_int_equal(load(c, text), 0);
	snprintf(text, sizeof(text), "#%.*s\n", limit, pad);
	assert_int_equal(load(c, text), 1);
	assert_true(has_err(c->err, c->path, 1, "longer than"));
	/* A key line at the limit is parsed, one past it reported where it is. */
	snprintf(text, sizeof(text), PROG "directory = /%.*s\n", limit - 13, pad);
	assert_int_equal(strlen(text) - strlen(PROG) - 1, (size_t)limit);
	n = load(c, text);
	if (n != 0)
		fail_msg("a %d-character key line is refused:\n%s", limit, c->err);
	assert_int_equal(strlen(c->cfg.programs[0].directory), (size_t)limit - 12);
	snprintf(text, sizeof(text), PROG "directory = /%.*s\nworkers = x\n", limit - 12, pad);
	assert_int_equal(load(c, text), 2);
	assert_true(has_err(c->err, c->path, 3, "longer than"));
	assert_true(has_err(c->err, c->path, 4, "workers"));
}

static void test_missing_file(void **state)
{
	struct ctx *c = *state;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/does-not-exist.ini", c->dir);
	int n = config_load(path, &c->cfg, c->err, sizeof(c->err));
	assert_int_equal(n, 1);
	assert_true(has_err(c->err, path, 0, "cannot open"));
	assert_non_null(strstr(c->err, "No such file"));
	assert_empty_cfg(&c->cfg);

	/* A directory cannot be read as a file either. */
	n = config_load(c->dir, &c->cfg, c->err, sizeof(c->err));
	assert_true(n >= 1);
	assert_empty_cfg(&c->cfg);
}

static void test_many_errors(void **state)
{
	struct ctx *c = *state;
	int n = load(c, "[baton]\n"                            /* 1 */
			"log_level = loud\n"                   /* 2 */
			"bogus = 1\n"                          /* 3 */
			"[listener:l]\n"                       /* 4: needs program */
			"address = tcp:1.2.3.4:99999\n"        /* 5 */
			"backlog = -5\n"                       /* 6 */
			"[program:p]\n"                        /* 7: backoff_max */
			"command = /bin/true\n"                /* 8 */
			"workers = x\n"                        /* 9 */
			"stop_signal = STOP\n"                 /* 10 */
			"backoff = 40s\n"                      /* 11 */
			"[nope]\n"                             /* 12 */
			"[program:p]\n");                      /* 13 */
	assert_int_equal(n, 10);
	assert_int_equal(count_lines(c->err), 10);
	assert_true(has_err(c->err, c->path, 2, "log_level"));
	assert_true(has_err(c->err, c->path, 3, "unknown key 'bogus'"));
	assert_true(has_err(c->err, c->path, 4, "needs 'program'"));
	assert_true(has_err(c->err, c->path, 5, "port"));
	assert_true(has_err(c->err, c->path, 6, "backlog"));
	assert_true(has_err(c->err, c->path, 7, "backoff_max"));
	assert_true(has_err(c->err, c->path, 9, "workers"));
	assert_true(has_err(c->err, c->path, 10, "stop_signal"));
	assert_true(has_err(c->err, c->path, 12, "unknown section"));
	assert_true(has_err(c->err, c->path, 13, "already defined at line 7"));
	assert_empty_cfg(&c->cfg);

	/* The same file with a tiny buffer: same count, text cut and terminated. */
	char small[40];
	memset(small, 'X', sizeof(small));
	struct config cfg2;
	assert_int_equal(config_load(c->path, &cfg2, small, sizeof(small)), 10);
	assert_true(strlen(small) < sizeof(small));
	assert_int_equal(strncmp(small, c->path, strlen(small) < strlen(c->path)
						       ? strlen(small)
						       : strlen(c->path)),
			 0);
	assert_empty_cfg(&cfg2);
	/* And with no buffer at all. */
	assert_int_equal(config_load(c->path, &cfg2, NULL, 0), 10);
	assert_empty_cfg(&cfg2);
}

/* A failed load leaves nothing behind even after a good one in the same cfg. */
static void test_error_frees(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(load(c, PROG LIS), 0);
	assert_int_equal(c->cfg.nprograms, 1);
	config_free(&c->cfg);
	/* Errors after programs with argv/env were allocated. */
	assert_int_equal(load(c, PROG "environment = A=1\n" LIS "[program:q]\ncommand = a b c\n"
				  "workers = -1\n"),
			 1);
	assert_empty_cfg(&c->cfg);
}

/* ---- findings kept apart so the rest of the suite reads clean ---- */

/* A UTF-8 byte order mark (Windows editors write one) must not hide a section. */
static void test_bom(void **state)
{
	struct ctx *c = *state;
	int n = load(c, "\xEF\xBB\xBF[program:p]\ncommand = /bin/true\nworkers = 3\n");
	if (n)
		fail_msg("BOM: unexpected errors:\n%s", c->err);
	assert_int_equal(c->cfg.nprograms, 1);
	assert_string_equal(c->cfg.programs[0].name, "p");
	assert_int_equal(c->cfg.programs[0].workers, 3);
	assert_int_equal(c->cfg.programs[0].line, 1);

	/* Before a key, it is not part of the key's name. */
	n = load(c, "\xEF\xBB\xBF; comment\n[baton]\nlog_level = warn\n" PROG);
	if (n)
		fail_msg("BOM before a comment: unexpected errors:\n%s", c->err);
	assert_int_equal(c->cfg.baton.log_level, LOGL_WARN);

	/* Only at the start of the file: later, the line is no section header. */
	n = load(c, PROG "\xEF\xBB\xBF[program:q]\ncommand = /bin/true\n");
	assert_true(n >= 1);
	assert_true(has_err(c->err, c->path, 3, "unknown key"));
	assert_empty_cfg(&c->cfg);
}

static void test_long_section_name(void **state)
{
	struct ctx *c = *state;
	char text[512], name[200];
	memset(name, 'a', 130);
	name[130] = '\0';
	snprintf(text, sizeof(text), "[program:%s]\ncommand = /bin/true\n" LIS, name);
	int n = load(c, text);
	/* The section is refused, so [listener:l] feeds an undefined program. */
	if (n != 2 || !has_err(c->err, c->path, 1, "bad section name") ||
	    !has_err(c->err, c->path, 3, "feeds program 'p'"))
		fail_msg("want 'bad section name' at line 1 and 'feeds program' at 3, got %d:\n%s",
			 n, c->err);
	assert_empty_cfg(&c->cfg);

	/* Any kind of section. */
	snprintf(text, sizeof(text), PROG "[listener:%s]\naddress = tcp:*:1\nprogram = p\n", name);
	assert_int_equal(load(c, text), 1);
	assert_true(has_err(c->err, c->path, 3, "bad section name"));
	snprintf(text, sizeof(text), PROG "[%s]\nx = 1\n", name);
	assert_int_equal(load(c, text), 1);
	assert_true(has_err(c->err, c->path, 3, "unknown section"));
}

static void test_two_syntax_errors(void **state)
{
	struct ctx *c = *state;
	int n = load(c, PROG "first bad line\nworkers = 2\nsecond bad line\n");
	/* Every one is reported, each once (inih would give only the first). */
	if (n != 2 || count_lines(c->err) != 2 ||
	    !has_err(c->err, c->path, 3, "syntax error: expected 'key = value'") ||
	    !has_err(c->err, c->path, 5, "syntax error: expected 'key = value'"))
		fail_msg("want syntax errors at lines 3 and 5, got %d:\n%s", n, c->err);
	assert_empty_cfg(&c->cfg);

	/* Mixed with unclosed sections and other errors, and after a
	 * continuation line; a line inih would take as a continuation is one. */
	n = load(c, "[program:p\n"             /* 1 */
		    "command = /bin/true\n"     /* 2: no section yet */
		    "oops\n"                    /* 3 */
		    "[program:q]\n"             /* 4 */
		    "command = /bin/true\n"     /* 5 */
		    "  --flag\n"                /* 6: continuation */
		    "workers = x\n"             /* 7 */
		    "[listener:l\n"             /* 8 */
		    "a ; = b\n"                 /* 9: the '=' is in a comment */
		    "  [program:r\n");          /* 10: continuation of 7 */
	if (n != 8 || count_lines(c->err) != 8 ||
	    !has_err(c->err, c->path, 1, "syntax error: no ']'") ||
	    !has_err(c->err, c->path, 2, "outside any section") ||
	    !has_err(c->err, c->path, 3, "syntax error: expected 'key = value'") ||
	    !has_err(c->err, c->path, 6, "set twice") ||
	    !has_err(c->err, c->path, 7, "workers") ||
	    !has_err(c->err, c->path, 8, "syntax error: no ']'") ||
	    !has_err(c->err, c->path, 9, "syntax error: expected 'key = value'") ||
	    !has_err(c->err, c->path, 10, "set twice"))
		fail_msg("want 8 errors at lines 1-3 and 6-10, got %d:\n%s", n, c->err);
	assert_empty_cfg(&c->cfg);
}

static void test_control_group_line(void **state)
{
	struct ctx *c = *state;
	int n = load(c, PROG "[baton]\nlog_level = info\ncontrol_group = baton_no_such_group\n");
	assert_int_equal(n, 1);
	/* Reported at the control_group key (line 1 is [program:p]). */
	if (!has_err(c->err, c->path, 5, "control_group: no such group"))
		fail_msg("control_group error not at its key (line 5):\n%s", c->err);
}

static void test_no_cascade_bad_program_name(void **state)
{
	struct ctx *c = *state;
	int n = load(c, PROG "[listener:l]\naddress = tcp:127.0.0.1:1\nprogram = bad name!\n");
	assert_true(has_err(c->err, c->path, 5, "not a valid name"));
	/* One mistake, one error: no "feeds program ''" after it. */
	if (n != 1)
		fail_msg("bad program name: %d errors, want 1:\n%s", n, c->err);
	assert_null(strstr(c->err, "feeds program"));
	assert_null(strstr(c->err, "needs 'program'"));
}

static void test_no_cascade_bad_unix_address(void **state)
{
	struct ctx *c = *state;
	int n = load(c, PROG "[listener:u]\naddress = unix:relative.sock\nprogram = p\nmode = 0600\n");
	assert_true(has_err(c->err, c->path, 4, "absolute"));
	/* One mistake, one error: no "mode and owner apply only to unix". */
	if (n != 1)
		fail_msg("bad unix address + mode: %d errors, want 1:\n%s", n, c->err);
	assert_null(strstr(c->err, "only to unix"));
	assert_null(strstr(c->err, "needs 'address'"));

	/* A bad address clashes with no other listener's either. */
	n = load(c, PROG "[listener:a]\naddress = tcp:127.0.0.1:99999\nprogram = p\n"
			 "[listener:b]\naddress = tcp:127.0.0.1:99999\nprogram = p\n");
	if (n != 2 || !has_err(c->err, c->path, 4, "port") || !has_err(c->err, c->path, 7, "port"))
		fail_msg("two bad addresses: %d errors, want 2:\n%s", n, c->err);
}

/* Write len bytes (NULs too) as the context's baton.ini and load it. */
static int load_bytes(struct ctx *c, const char *data, size_t len)
{
	config_free(&c->cfg);
	FILE *f = fopen(c->path, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	memset(c->err, 'X', sizeof(c->err));
	return config_load(c->path, &c->cfg, c->err, sizeof(c->err));
}

/* A NUL byte cut a value short without a word (inih sees C strings). */
static void test_nul_byte(void **state)
{
	struct ctx *c = *state;
	static const char cmd[] = "[program:p]\ncommand = /bin/sleep 100\0 --evil\n" LIS;
	int n = load_bytes(c, cmd, sizeof(cmd) - 1);
	if (n < 1 || !has_err(c->err, c->path, 2, "NUL byte in the file"))
		fail_msg("NUL in a command: want 'NUL byte in the file' at line 2, got %d:\n%s", n,
			 c->err);
	assert_empty_cfg(&c->cfg);

	/* In any line (a comment too), each reported; the lines after it keep
	 * their numbers. */
	static const char text[] = PROG "environment = A=1\0B=2\n"  /* 3 */
				   "; a comment \0\n"                 /* 4 */
				   "workers = x\n" LIS;                /* 5 */
	n = load_bytes(c, text, sizeof(text) - 1);
	if (n != 3 || count_lines(c->err) != 3 ||
	    !has_err(c->err, c->path, 3, "NUL byte in the file") ||
	    !has_err(c->err, c->path, 4, "NUL byte in the file") || !has_err(c->err, c->path, 5, "workers"))
		fail_msg("want NUL errors at lines 3 and 4 and workers at 5, got %d:\n%s", n, c->err);
	assert_empty_cfg(&c->cfg);

	/* A last line without its '\n', and a lone NUL. */
	static const char last[] = LIS PROG "workers = 2\0";
	n = load_bytes(c, last, sizeof(last) - 1);
	assert_int_equal(n, 1);
	assert_true(has_err(c->err, c->path, 6, "NUL byte in the file"));
	n = load_bytes(c, "\0", 1);
	assert_int_equal(n, 1);
	assert_true(has_err(c->err, c->path, 1, "NUL byte in the file"));
	assert_empty_cfg(&c->cfg);

	/* The same file without the NUL is fine. */
	static const char clean[] = LIS PROG "workers = 2\n";
	assert_int_equal(load_bytes(c, clean, sizeof(clean) - 1), 0);
}

/* ---- the exported helpers ---- */

static void assert_strv(char **v, const char *const *want)
{
	assert_non_null(v);
	size_t i = 0;
	for (; want[i]; i++) {
		if (!v[i])
			fail_msg("missing word %zu '%s'", i, want[i]);
		assert_string_equal(v[i], want[i]);
	}
	assert_null(v[i]);
}

static void test_split_command(void **state)
{
	char err[256];
	char **v;
	(void)state;

#define CMD_OK(in, ...)                                                  \
	do {                                                             \
		static const char *const w_[] = {__VA_ARGS__, NULL};     \
		err[0] = '\0';                                           \
		v = config_split_command(in, err, sizeof(err));          \
		if (!v)                                                  \
			fail_msg("split_command(%s): %s", in, err);      \
		assert_strv(v, w_);                                      \
		config_free_strv(v);                                     \
	} while (0)
#define CMD_BAD(in, word)                                                \
	do {                                                             \
		err[0] = '\0';                                           \
		v = config_split_command(in, err, sizeof(err));          \
		if (v)                                                   \
			fail_msg("split_command(%s) accepted", in);      \
		if (!strstr(err, word))                                  \
			fail_msg("split_command(%s): '%s'", in, err);    \
	} while (0)

	CMD_OK("a", "a");
	CMD_OK("a b  c", "a", "b", "c");
	CMD_OK("  \ta\tb  ", "a", "b");
	CMD_OK("'a b' \"c d\"", "a b", "c d");
	CMD_OK("x'y z'w", "xy zw");
	CMD_OK("a\\ b", "a b");
	CMD_OK("'a\\b'", "a\\b");               /* no escapes in '...' */
	CMD_OK("\"a\\\"b\"", "a\"b");           /* \" in "..." */
	CMD_OK("\"it's\" 'say \"hi\"'", "it's", "say \"hi\"");
	CMD_OK("''", "");                       /* an empty argument */
	CMD_OK("a '' b", "a", "", "b");
	CMD_OK("end\\", "end\\");               /* a trailing \ stays */
	CMD_OK("/bin/sh -c 'echo $HOME; exit 3'", "/bin/sh", "-c", "echo $HOME; exit 3");

	CMD_BAD("", "empty");
	CMD_BAD("   \t ", "empty");
	CMD_BAD("'abc", "unterminated ' quote");
	CMD_BAD("a \"b c", "unterminated \" quote");
	CMD_BAD("\"a\\\"", "unterminated");
#undef CMD_OK
#undef CMD_BAD
}

static void test_split_env(void **state)
{
	char err[256];
	char **v;
	(void)state;

#define ENV_OK(in, ...)                                                  \
	do {                                                             \
		static const char *const w_[] = {__VA_ARGS__};           \
		err[0] = '\0';                                           \
		v = config_split_env(in, err, sizeof(err));              \
		if (!v)                                                  \
			fail_msg("split_env(%s): %s", in, err);          \
		assert_strv(v, w_);                                      \
		config_free_strv(v);                                     \
	} while (0)
#define ENV_BAD(in, word)                                                \
	do {                                                             \
		err[0] = '\0';                                           \
		v = config_split_env(in, err, sizeof(err));              \
		if (v)                                                   \
			fail_msg("split_env(%s) accepted", in);          \
		if (!strstr(err, word))                                  \
			fail_msg("split_env(%s): '%s'", in, err);        \
	} while (0)

	ENV_OK("", NULL);
	ENV_OK("A=1", "A=1", NULL);
	ENV_OK("A=1,B=2", "A=1", "B=2", NULL);
	ENV_OK("A=1 , B=2", "A=1", "B=2", NULL);
	ENV_OK("K=\"v,2\",K2=x", "K=v,2", "K2=x", NULL);
	ENV_OK("A=\"a\\\"b\"", "A=a\"b", NULL);
	ENV_OK("A=", "A=", NULL);
	ENV_OK("A=1,", "A=1", NULL);
	ENV_OK("_x9=y=z", "_x9=y=z", NULL);
	ENV_OK("P=/usr/bin:/bin", "P=/usr/bin:/bin", NULL);
	ENV_OK("S=a b", "S=a b", NULL);
	/* Only a key that starts with BATON_ is batond's: not one shorter
	 * than that whose buffer still holds an earlier key (fuzz_config). */
	ENV_OK("XATON_=1,B=2", "XATON_=1", "B=2", NULL);
	ENV_OK("BATON=1,BATO=2", "BATON=1", "BATO=2", NULL);
	ENV_BAD("A=1,BATON_X=2", "BATON_X is set by batond");

	ENV_BAD("=1", "KEY=VALUE");
	ENV_BAD("1A=2", "KEY=VALUE");
	ENV_BAD("A", "KEY=VALUE");
	ENV_BAD("A-B=1", "KEY=VALUE");
	ENV_BAD("A = 1", "KEY=VALUE");
	ENV_BAD("A=1,,B=2", "KEY=VALUE");
	ENV_BAD("A=\"x", "unterminated \" in A");
	ENV_BAD("A=\"x\"y", "expected ',' after A");
#undef ENV_OK
#undef ENV_BAD
}

static void test_parse_signal(void **state)
{
	static const struct {
		const char *s;
		int sig;
	} ok[] = {
		{"TERM", SIGTERM}, {"SIGTERM", SIGTERM}, {"15", SIGTERM},
		{"INT", SIGINT},   {"SIGINT", SIGINT},   {"2", SIGINT},
		{"QUIT", SIGQUIT}, {"SIGQUIT", SIGQUIT}, {"3", SIGQUIT},
		{"HUP", SIGHUP},   {"SIGHUP", SIGHUP},   {"1", SIGHUP},
		{"USR1", SIGUSR1}, {"SIGUSR1", SIGUSR1}, {"10", SIGUSR1},
		{"USR2", SIGUSR2}, {"SIGUSR2", SIGUSR2}, {"12", SIGUSR2},
		{"KILL", SIGKILL}, {"SIGKILL", SIGKILL}, {"9", SIGKILL},
	};
	static const char *const bad[] = {"",   "SIG", "FOO", "SIGFOO", "SEGV", "11", "0",
					  "65", "-15", "15x", "TERM ", "SIGSIGTERM"};
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (config_parse_signal(ok[i].s) != ok[i].sig)
			fail_msg("config_parse_signal(%s) = %d, want %d", ok[i].s,
				 config_parse_signal(ok[i].s), ok[i].sig);
		/* The name round-trips. */
		const char *name = config_signal_name(ok[i].sig);
		assert_int_equal(config_parse_signal(name), ok[i].sig);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_parse_signal(bad[i]) != -1)
			fail_msg("config_parse_signal('%s') = %d, want -1", bad[i],
				 config_parse_signal(bad[i]));
	assert_string_equal(config_signal_name(SIGTERM), "TERM");
	assert_string_equal(config_signal_name(SIGSEGV), "?");
}

static void test_reference(void **state)
{
	static const char *const keys[] = {
		"control", "control_mode", "control_group", "control_group_write", "log_level",
		"batch_scheduling",
		"log_file", "http",
		"address", "program", "backlog", "mode", "owner", "tcp_nodelay",
		"tcp_keepalive", "tcp_keepidle", "tcp_keepintvl", "tcp_keepcnt",
		"tcp_user_timeout", "tcp_defer_accept",
		"command", "workers", "directory", "environment", "user", "umask",
		"ready_timeout", "drain_timeout", "stop_timeout", "queue_timeout", "heartbeat_timeout",
		"ack_timeout", "stdout", "stderr",
		"stop_signal", "restart", "backoff", "backoff_max", "start_retries",
		"start_window", "capacity", "upgrade_batch",
	};
	static const char *const required[] = {"address", "program", "command"};
	(void)state;

	FILE *f = tmpfile();
	assert_non_null(f);
	config_reference(f);
	long size = ftell(f);
	assert_true(size > 0);
	char *text = calloc(1, (size_t)size + 1);
	assert_non_null(text);
	rewind(f);
	assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
	fclose(f);

	assert_int_equal(strncmp(text, "| section | key |", 17), 0);
	/* A header, a rule, then one row per key. */
	size_t nkeys = sizeof(keys) / sizeof(keys[0]);
	assert_int_equal(count_lines(text), (int)(2 + nkeys));
	for (size_t i = 0; i < nkeys; i++) {
		char row[64];
		snprintf(row, sizeof(row), "| `%s` |", keys[i]);
		if (!strstr(text, row))
			fail_msg("no reference row for '%s'", keys[i]);
	}
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		char row[64];
		snprintf(row, sizeof(row), "| `%s` |", required[i]);
		char *line = strstr(text, row);
		char *nl = strchr(line, '\n');
		*nl = '\0';
		if (!strstr(line, "**required**"))
			fail_msg("'%s' is not marked required: %s", required[i], line);
		*nl = '\n';
	}
	/* Sections and a few documented defaults and ranges. */
	assert_non_null(strstr(text, "| `[listener:NAME]` | `backlog` | integer | 511 | 1–65535 |"));
	assert_non_null(strstr(text, "| `[program:NAME]` | `ready_timeout` | duration | 10s | 1ms–1h |"));
	assert_non_null(strstr(text, "| `[program:NAME]` | `capacity` | integer | 1024 |"));
	assert_non_null(strstr(text, "| `[baton]` | `control_group` | string | (empty) |"));
	free(text);
}

/* The man(7) form of the same table, for baton.ini(5). */
static void test_reference_man(void **state)
{
	(void)state;
	FILE *f = tmpfile();
	assert_non_null(f);
	config_reference_man(f);
	long size = ftell(f);
	assert_true(size > 0);
	char *text = calloc(1, (size_t)size + 1);
	assert_non_null(text);
	rewind(f);
	assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
	fclose(f);

	int tp = 0, ss = 0;
	for (char *line = text; *line; line = strchr(line, '\n') + 1) {
		tp += strncmp(line, ".TP\n", 4) == 0;
		ss += strncmp(line, ".SS ", 4) == 0;
		/* no stray request: every line starting with '.' is a known macro */
		if (line[0] == '.' && strncmp(line, ".TP", 3) && strncmp(line, ".SS", 3) &&
		    strncmp(line, ".BR", 3))
			fail_msg("unexpected request: %.40s", line);
	}
	assert_int_equal(ss, 3);
	assert_true(tp >= 30);
	for (const unsigned char *c = (const unsigned char *)text; *c; c++)
		if (*c >= 0x80 || *c == '`')
			fail_msg("not plain roff at: %.40s", (const char *)c);
	assert_non_null(strstr(text, ".SS [listener:NAME]\n"));
	assert_non_null(strstr(text, ".BR backlog \" (integer, default 511, 1 to 65535)\"\n"));
	assert_non_null(strstr(text, ".BR ready_timeout \" (duration, default 10s, 1ms to 1h)\"\n"));
	assert_non_null(strstr(text, ".BR command \" (command, required)\"\n"));
	assert_non_null(strstr(text, "read\\-only commands (\\fBstatus\\fR,"));
	free(text);
}

/* Load text and keep the result apart from c->cfg (which load() reuses). */
static void load_into(struct ctx *c, const char *text, struct config *out)
{
	if (load(c, text))
		fail_msg("config does not load:\n%s", c->err);
	*out = c->cfg;
	memset(&c->cfg, 0, sizeof(c->cfg));
}

#define DIFF_BASE                                                                  \
	"[listener:web]\naddress = tcp:127.0.0.1:8080\nprogram = app\n%s"           \
	"[program:app]\ncommand = /bin/true\n%s"

/* A reload compares key by key through the table: what differs, and how. */
static void test_diff(void **state)
{
	struct ctx *c = *state;
	static const struct {
		const char *lis, *prog;
		unsigned lis_diff, prog_diff;
	} cases[] = {
		{"", "", 0, 0},
		{"backlog = 100\n", "", CONFIG_DIFF_SETTINGS, 0},
		{"tcp_nodelay = no\n", "", CONFIG_DIFF_SETTINGS, 0},
		{"tcp_user_timeout = 5s\n", "", CONFIG_DIFF_SETTINGS, 0},
		{"tcp_defer_accept = 1s\n", "", CONFIG_DIFF_SETTINGS, 0},
		{"", "workers = 3\n", 0, CONFIG_DIFF_WORKERS},
		{"", "capacity = 7\n", 0, CONFIG_DIFF_SETTINGS},
		{"", "stop_signal = INT\n", 0, CONFIG_DIFF_SETTINGS},
		{"", "restart = never\n", 0, CONFIG_DIFF_SETTINGS},
		{"", "environment = A=1\n", 0, CONFIG_DIFF_SETTINGS},
		{"", "workers = 5\nready_timeout = 3s\n", 0,
		 CONFIG_DIFF_WORKERS | CONFIG_DIFF_SETTINGS},
	};
	char text[1024];
	struct config a, b;

	snprintf(text, sizeof(text), DIFF_BASE, "", "");
	load_into(c, text, &a);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), DIFF_BASE, cases[i].lis, cases[i].prog);
		load_into(c, text, &b);
		assert_int_equal(config_diff_listener(&a.listeners[0], &b.listeners[0]),
				 cases[i].lis_diff);
		assert_int_equal(config_diff_program(&a.programs[0], &b.programs[0]),
				 cases[i].prog_diff);
		config_free(&b);
	}
	/* A new address is a new socket, whatever else changed with it. */
	load_into(c,
		  "[listener:web]\naddress = tcp:127.0.0.1:8081\nprogram = app\nbacklog = 9\n"
		  "[program:app]\ncommand = /bin/true\n",
		  &b);
	assert_int_equal(config_diff_listener(&a.listeners[0], &b.listeners[0]),
			 CONFIG_DIFF_ADDRESS | CONFIG_DIFF_SETTINGS);
	config_free(&b);
	config_free(&a);
}

/* The [baton] keys a reload cannot change name themselves; the rest may change. */
static void test_check_restart(void **state)
{
	struct ctx *c = *state;
	struct config a, b;
	char err[512];

	load_into(c, "[baton]\ncontrol = /run/x/a.sock\nlog_level = info\n", &a);
	load_into(c, "[baton]\ncontrol = /run/x/a.sock\nlog_level = debug\ncontrol_mode = 0660\n", &b);
	assert_int_equal(config_check_restart(&a.baton, &b.baton, err, sizeof(err)), 0);
	config_free(&b);

	load_into(c, "[baton]\ncontrol = /run/x/b.sock\n", &b);
	assert_int_equal(config_check_restart(&a.baton, &b.baton, err, sizeof(err)), -1);
	assert_string_equal(err, "control: moving the control socket (/run/x/a.sock to /run/x/b.sock) "
				 "needs a restart of batond; nothing changed");
	config_free(&b);

	load_into(c, "[baton]\ncontrol = /run/x/a.sock\nlog_file = /var/log/b.log\n", &b);
	assert_int_equal(config_check_restart(&a.baton, &b.baton, err, sizeof(err)), -1);
	assert_string_equal(err, "log_file: moving the log ('' to '/var/log/b.log') needs a restart "
				 "of batond; nothing changed");
	config_free(&b);

	load_into(c, "[baton]\ncontrol = /run/x/a.sock\nhttp = tcp:127.0.0.1:9180\n", &b);
	assert_int_equal(config_check_restart(&a.baton, &b.baton, err, sizeof(err)), -1);
	assert_string_equal(err, "http: moving the HTTP endpoint ('' to 'tcp:127.0.0.1:9180') needs "
				 "a restart of batond; nothing changed");
	config_free(&b);
	config_free(&a);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_full_valid),
		T(test_defaults),
		T(test_empty_file),
		T(test_syntax_variants),
		T(test_here),
		T(test_bad_input),
		T(test_no_false_clash),
		T(test_long_line),
		T(test_missing_file),
		T(test_many_errors),
		T(test_error_frees),
		T(test_split_command),
		T(test_split_env),
		T(test_parse_signal),
		T(test_reference),
		T(test_reference_man),
		T(test_diff),
		T(test_check_restart),
		/* Once findings, kept apart. */
		T(test_long_line_limit),
		T(test_bom),
		T(test_long_section_name),
		T(test_two_syntax_errors),
		T(test_control_group_line),
		T(test_no_cascade_bad_program_name),
		T(test_no_cascade_bad_unix_address),
		T(test_nul_byte),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
