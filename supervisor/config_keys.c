/* The key table and what is printed from it: see config_keys.h. */
#include "config_keys.h"

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "state.h"
#include "util.h"
#include "version.h"

#define F(type, field) offsetof(type, field), sizeof(((type *)0)->field)
#define B(n, t, f, lo, hi, d, h) \
	{S_BATON, n, t, F(struct cfg_baton, f), lo, hi, d, h, NULL, CONFIG_DIFF_SETTINGS}
/* A [baton] key only a restart of batond changes; r says what a change means. */
#define BR(n, t, f, d, h, r) {S_BATON, n, t, F(struct cfg_baton, f), 0, 0, d, h, r, CONFIG_DIFF_SETTINGS}
#define L(n, t, f, lo, hi, d, h) LD(n, t, f, lo, hi, d, h, CONFIG_DIFF_SETTINGS)
#define LD(n, t, f, lo, hi, d, h, diff) \
	{S_LISTENER, n, t, F(struct cfg_listener, f), lo, hi, d, h, NULL, diff}
#define P(n, t, f, lo, hi, d, h) PD(n, t, f, lo, hi, d, h, CONFIG_DIFF_SETTINGS)
#define PD(n, t, f, lo, hi, d, h, diff) \
	{S_PROGRAM, n, t, F(struct cfg_program, f), lo, hi, d, h, NULL, diff}
#define HOUR 3600000LL
#define DAY (24 * HOUR)

const struct config_key config_keys[] = {
	BR("control", T_STR, control, BATON_DEFAULT_CONTROL,
	   "Absolute path of the control socket `batonctl` talks to (at most 107 bytes).",
	   "moving the control socket (%s to %s)"),
	B("control_mode", T_MODE, control_mode, 0, 0, "0600",
	  "File mode of the control socket. Root and batond's own user are always allowed."),
	B("control_group", T_STR, control_group, 0, 0, "",
	  "Group whose members may use read-only commands (`status`, `metrics`, `version`, `pid`, `help`); give the socket a mode that lets them connect, e.g. 0660."),
	B("control_group_write", T_BOOL, control_group_write, 0, 0, "no",
	  "Also allow `control_group` members every other command (start, stop, scale...)."),
	B("log_level", T_LEVEL, log_level, 0, 0, "info",
	  "debug, info, warn or error."),
	B("batch_scheduling", T_BOOL, batch_scheduling, 0, 0, "yes",
	  "Run batond as SCHED_BATCH and its workers as SCHED_OTHER, so that on a busy machine batond does not preempt a worker each time one wakes it, and hands over connections in bigger batches (sched(7)). Only when batond starts as SCHED_OTHER: a policy set by the operator is kept."),
	BR("log_file", T_STR, log_file, "",
	   "Write batond's log to this file (appending; reopened on SIGUSR1, for logrotate) instead of stderr; empty: stderr.",
	   "moving the log ('%s' to '%s')"),
	BR("http", T_ADDR, http, "",
	   "Optional HTTP endpoint for probes and Prometheus, e.g. `tcp:127.0.0.1:9180`: `/metrics`, `/healthz`, `/readyz` (TCP only; empty: off).",
	   "moving the HTTP endpoint ('%s' to '%s')"),

	LD("address", T_ADDR, address, 0, 0, NULL,
	  "`tcp:HOST:PORT`, `tcp:[V6]:PORT`, `[V6]:PORT` or `unix:/abs/path`; port 0 picks a free port. `systemd:NAME` (or `systemd`: the listener's own name) adopts the socket systemd passed with that FileDescriptorName= (socket activation).", CONFIG_DIFF_ADDRESS),
	L("program", T_NAME, program, 0, 0, NULL,
	  "The `[program:NAME]` that serves this listener's connections."),
	L("backlog", T_INT, backlog, 1, 65535, "511",
	  "listen(2) backlog: clients the kernel holds while no worker has credit."),
	L("mode", T_MODE, mode, 0, 0, "0666", "Unix only: file mode of the socket."),
	L("owner", T_STR, owner, 0, 0, "",
	  "Unix only: `user[:group]` to own the socket file. Removed by a reload: the file's owner and group go back to what batond created it with."),
	L("tcp_nodelay", T_BOOL, tcp_nodelay, 0, 0, "yes",
	  "TCP only: TCP_NODELAY on accepted connections."),
	L("tcp_keepalive", T_BOOL, tcp_keepalive, 0, 0, "no",
	  "TCP only: SO_KEEPALIVE on accepted connections."),
	L("tcp_keepidle", T_DUR, tcp_keepidle, 0, 32767000, "0",
	  "TCP only: idle time before keepalive probes (0: system default)."),
	L("tcp_keepintvl", T_DUR, tcp_keepintvl, 0, 32767000, "0",
	  "TCP only: interval between keepalive probes (0: system default)."),
	L("tcp_keepcnt", T_INT, tcp_keepcnt, 0, 127, "0",
	  "TCP only: probes before the connection is dropped (0: system default)."),
	L("tcp_user_timeout", T_DUR, tcp_user_timeout, 0, HOUR, "0",
	  "TCP only: TCP_USER_TIMEOUT (0: system default)."),
	L("tcp_defer_accept", T_DUR, tcp_defer_accept, 0, HOUR, "0",
	  "TCP only: TCP_DEFER_ACCEPT: a client is accepted once it has sent data (or after about this long, whole seconds), so its worker reads the request at once; only for protocols where the client speaks first (HTTP, TLS). 0: off."),

	P("command", T_CMD, command, 0, 0, NULL,
	  "Program and arguments, split on spaces with '...' and \"...\" quoting (no shell)."),
	PD("workers", T_INT, workers, 0, 1024, "1", "Number of worker processes.", CONFIG_DIFF_WORKERS),
	P("directory", T_STR, directory, 0, 0, "",
	  "Working directory of the workers, entered as the worker's user (default: batond's)."),
	P("environment", T_ENV, environment, 0, 0, "",
	  "Extra environment: `KEY=VALUE,KEY2=\"a,b\"`."),
	P("user", T_STR, user, 0, 0, "",
	  "Run workers as this user (batond needs root, or CAP_SETUID and CAP_SETGID). The worker keeps no capability and gets the user's HOME, USER, LOGNAME and SHELL."),
	P("umask", T_MODE, umask, 0, 0777, "0022",
	  "File mode creation mask of the workers (octal, at most 0777)."),
	P("ready_timeout", T_DUR, ready_timeout, 1, HOUR, "10s",
	  "A new worker must report ready within this time."),
	P("drain_timeout", T_DUR, drain_timeout, 0, DAY, "30s",
	  "A draining worker may finish its connections for this long before it is stopped."),
	P("stop_timeout", T_DUR, stop_timeout, 0, HOUR, "10s",
	  "After the stop signal, wait this long before SIGKILL."),
	P("queue_timeout", T_DUR, queue_timeout, 1, HOUR, "5s",
	  "A connection no worker can take within this time is closed (and counted)."),
	P("heartbeat_timeout", T_DUR, heartbeat_timeout, 0, HOUR, "10s",
	  "A RUNNING worker silent this long on its channel is hung: killed, replaced, its unacked connections handed to others (batond sends STATUS after half of it; 0: off)."),
	P("ack_timeout", T_DUR, ack_timeout, 0, HOUR, "10s",
	  "A worker must acknowledge a connection within this time of its handoff, or it is treated as broken: killed, replaced, its unacknowledged connections handed to others (0: off)."),
	P("stdout", T_STR, stdout_to, 0, 0, "log",
	  "Where the workers' stdout goes: `log` (each line into batond's log, prefixed `web:0 stdout:`), `inherit` (batond's own stdout) or an absolute file path (lines appended with a timestamp; reopened on SIGUSR1). Over 1000 lines a second are dropped and counted."),
	P("stderr", T_STR, stderr_to, 0, 0, "log",
	  "The same for the workers' stderr."),
	P("stop_signal", T_SIG, stop_signal, 0, 0, "TERM",
	  "Signal that stops a worker: TERM, INT, QUIT, HUP, USR1, USR2 or KILL."),
	P("restart", T_RESTART, restart, 0, 0, "always",
	  "Restart an exited worker: always, on-failure or never."),
	P("backoff", T_DUR, backoff, 1, HOUR, "500ms",
	  "Delay before restarting a worker that failed to start; doubles each time."),
	P("backoff_max", T_DUR, backoff_max, 1, DAY, "30s", "Upper bound of the backoff."),
	P("start_retries", T_INT, start_retries, 0, 1000, "5",
	  "Failed starts in a row before the worker slot goes FATAL."),
	P("start_window", T_DUR, start_window, 0, HOUR, "1s",
	  "A worker that exits sooner than this after starting counts as a failed start."),
	P("capacity", T_INT, capacity, 1, 1000000, "1024",
	  "Most connections one worker holds at once (its credit)."),
	P("upgrade_batch", T_INT, upgrade_batch, 1, 1024, "1",
	  "Workers replaced at a time by a rolling upgrade."),
};
const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);
_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) <= 64,
	       "the per-section 'set' masks hold 64 keys");

static const char *type_name(enum ktype t)
{
	static const char *const names[] = {
		[T_STR] = "string",       [T_NAME] = "name",
		[T_INT] = "integer",      [T_BOOL] = "boolean",
		[T_DUR] = "duration",     [T_MODE] = "octal mode",
		[T_SIG] = "signal",       [T_RESTART] = "policy",
		[T_LEVEL] = "level",      [T_ADDR] = "address",
		[T_CMD] = "command",      [T_ENV] = "environment",
	};
	return names[t];
}

void config_reference(FILE *out)
{
	static const char *const secs[] = {"[baton]", "[listener:NAME]",
					   "[program:NAME]"};
	fprintf(out, "| section | key | type | default | range | meaning |\n");
	fprintf(out, "|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		char range[64] = "";
		if (k->type == T_INT)
			snprintf(range, sizeof(range), "%lld–%lld", k->min, k->max);
		else if (k->type == T_DUR) {
			char lo[32], hi[32];
			util_format_duration(k->min, lo, sizeof(lo));
			util_format_duration(k->max, hi, sizeof(hi));
			snprintf(range, sizeof(range), "%s–%s", lo, hi);
		}
		fprintf(out, "| `%s` | `%s` | %s | %s | %s | %s |\n", secs[k->sec],
			k->name, type_name(k->type),
			!k->def ? "**required**" : k->def[0] ? k->def : "(empty)",
			range, k->help);
	}
}

/* Text for roff: `code` in bold, backslashes and en dashes escaped. */
static void man_text(FILE *out, const char *s)
{
	int bold = 0;
	for (; *s; s++) {
		if (*s == '`') {
			fputs(bold ? "\\fR" : "\\fB", out);
			bold = !bold;
		} else if (*s == '\\') {
			fputs("\\e", out);
		} else if (*s == '-') {
			fputs("\\-", out);
		} else if ((unsigned char)s[0] == 0xe2 && (unsigned char)s[1] == 0x80 &&
			   (unsigned char)s[2] == 0x93) {
			fputs("\\(en", out); /* the en dash of ranges */
			s += 2;
		} else {
			fputc(*s, out);
		}
	}
	if (bold)
		fputs("\\fR", out);
}

void config_reference_man(FILE *out)
{
	static const char *const secs[] = {"[baton]", "[listener:NAME]", "[program:NAME]"};
	int sec = -1;
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		if ((int)k->sec != sec) {
			sec = (int)k->sec;
			fprintf(out, ".SS %s\n", secs[sec]);
		}
		fprintf(out, ".TP\n.BR %s \" (%s, ", k->name, type_name(k->type));
		if (!k->def)
			fputs("required", out);
		else if (!k->def[0])
			fputs("default empty", out);
		else {
			fputs("default ", out);
			man_text(out, k->def);
		}
		if (k->type == T_INT)
			fprintf(out, ", %lld to %lld", k->min, k->max);
		else if (k->type == T_DUR) {
			char lo[32], hi[32];
			util_format_duration(k->min, lo, sizeof(lo));
			util_format_duration(k->max, hi, sizeof(hi));
			fprintf(out, ", %s to %s", lo, hi);
		}
		fputs(")\"\n", out);
		man_text(out, k->help);
		fputc('\n', out);
	}
}

int config_check_restart(const struct cfg_baton *old, const struct cfg_baton *cur, char *err,
			 size_t errlen)
{
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		if (!k->restart)
			continue;
		const char *was = (const char *)old + k->off, *now = (const char *)cur + k->off;
		if (strcmp(was, now) == 0)
			continue;
		char what[2 * CFG_STR_MAX + 64];
		snprintf(what, sizeof(what), k->restart, was, now);
		snprintf(err, errlen, "%s: %s needs a restart of batond; nothing changed", k->name,
			 what);
		return -1;
	}
	return 0;
}

static unsigned diff(enum ksec sec, const void *a, const void *b)
{
	unsigned d = 0;
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		const char *x = (const char *)a + k->off, *y = (const char *)b + k->off;
		if (k->sec != sec)
			continue;
		switch (k->type) {
		case T_STR:
		case T_NAME:
		case T_ADDR:
		case T_CMD:
		case T_ENV: /* the text; what was parsed from it follows */
			if (strcmp(x, y) != 0)
				d |= k->diff;
			break;
		default: /* a number, flag or enum */
			if (memcmp(x, y, k->size) != 0)
				d |= k->diff;
			break;
		}
	}
	return d;
}

unsigned config_diff_listener(const struct cfg_listener *a, const struct cfg_listener *b)
{
	return diff(S_LISTENER, a, b);
}

unsigned config_diff_program(const struct cfg_program *a, const struct cfg_program *b)
{
	return diff(S_PROGRAM, a, b);
}

void config_save_section(struct state_out *o, int sec, const void *base)
{
	static const char *const policies[] = {"always", "on-failure", "never"};
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		const char *v = (const char *)base + k->off;
		char key[80], buf[32];
		if ((int)k->sec != sec)
			continue;
		snprintf(key, sizeof(key), "cfg.%s", k->name);
		switch (k->type) {
		case T_STR:
		case T_NAME:
		case T_ADDR:
		case T_CMD:
		case T_ENV:
			state_str(o, key, v);
			continue;
		case T_INT:
			snprintf(buf, sizeof(buf), "%lld", *(const long long *)v);
			break;
		case T_BOOL:
			snprintf(buf, sizeof(buf), "%s", *(const int *)v ? "yes" : "no");
			break;
		case T_DUR:
			snprintf(buf, sizeof(buf), "%llums", (unsigned long long)*(const uint64_t *)v);
			break;
		case T_MODE:
			snprintf(buf, sizeof(buf), "0%o", *(const unsigned *)v);
			break;
		case T_SIG:
			snprintf(buf, sizeof(buf), "%s", config_signal_name(*(const int *)v));
			break;
		case T_RESTART:
			snprintf(buf, sizeof(buf), "%s", policies[*(const enum restart_policy *)v]);
			break;
		case T_LEVEL:
			snprintf(buf, sizeof(buf), "%s", log_level_name(*(const enum log_level *)v));
			break;
		}
		state_str(o, key, buf);
	}
}
