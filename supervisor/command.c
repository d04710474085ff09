/*
 * The control commands: one handler per command of ctl_commands[] (the
 * table both batonctl and batond read), run on a parsed request, answering
 * through a struct reply.  Long commands are operations (ops.h).
 */
#include "command.h"

#include <errno.h>
#include <event2/buffer.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batond.h"
#include "config.h"
#include "ctl.h"
#include "log.h"
#include "ops.h"
#include "pool.h"
#include "proto.h"
#include "reexec.h"
#include "reply.h"
#include "report.h"
#include "upgrade.h"
#include "version.h"

/* One request being run. */
struct request {
	const struct reply *r;
	int json;
	int uid, pid;
	int argc;    /* arguments after the command */
	char **argv;
};

static void cmd_upgrade(const struct request *rq)
{
	int argc = rq->argc;
	char **argv = rq->argv;
	const char *name = argv[argc - 1];
	int abort_it = argc == 2;
	struct program *p;
	char err[256];

	if (argc == 2 && strcmp(argv[0], "--abort") != 0) {
		reply_finish(rq->r, CTL_USAGE, "usage: batonctl upgrade [--abort] NAME");
		return;
	}
	if (strcmp(name, "all") == 0 && !abort_it) {
		reply_finish(rq->r, CTL_USAGE, "upgrade one program at a time (or send batond SIGUSR2 for all)");
		return;
	}
	if (strchr(name, ':') || !(p = pool_find(name))) {
		reply_finish(rq->r, CTL_USAGE, "upgrade takes a program name: no such program '%s'", name);
		return;
	}
	if (abort_it) {
		char msg[256];
		if (upgrade_abort(p, rq->uid, msg, sizeof(msg)) < 0)
			reply_finish(rq->r, CTL_FAILED, "%s", msg);
		else
			reply_finish(rq->r, CTL_OK, "%s", msg);
		return;
	}
	if (upgrade_start(rq->r, NULL, p, err, sizeof(err)) < 0)
		reply_finish(rq->r, CTL_FAILED, "%s", err);
}


static void cmd_reload(const struct request *rq)
{
	int argc = rq->argc;
	char **argv = rq->argv;
	if (argc == 1 && strcmp(argv[0], "--dry-run") != 0) {
		reply_finish(rq->r, CTL_USAGE, "usage: batonctl reload [--dry-run]");
		return;
	}
	ops_reload(rq->r, argc == 1);
}

static int resolve(const struct request *rq, const char *name, struct target **t)
{
	char err[256];
	int n = report_targets(name, t, err, sizeof(err));
	if (n < 0)
		reply_finish(rq->r, CTL_USAGE, "%s", err);
	return n;
}

static void cmd_status(const struct request *rq)
{
	int argc = rq->argc;
	char **argv = rq->argv;
	struct target *all = NULL;
	int n = 0;

	for (int i = 0; i < argc; i++) {
		struct target *t;
		int k = resolve(rq, argv[i], &t);
		if (k < 0) {
			free(all);
			return;
		}
		struct target *v = realloc(all, (n + k) * sizeof(*v));
		if (!v) {
			free(t);
			free(all);
			reply_finish(rq->r, CTL_FAILED, "out of memory");
			return;
		}
		all = v;
		memcpy(all + n, t, k * sizeof(*t));
		n += k;
		free(t);
	}
	struct evbuffer *buf = evbuffer_new();
	if (!buf) {
		free(all);
		reply_finish(rq->r, CTL_FAILED, "out of memory");
		return;
	}
	int code = report_status(buf, rq->json, all, n, now_ms());
	reply_buffer(rq->r, '|', buf);
	evbuffer_free(buf);
	free(all);
	reply_finish(rq->r, code, "%s", code ? "not every worker is RUNNING" : "");
}

static void cmd_metrics(const struct request *rq)
{
	struct evbuffer *buf = evbuffer_new();
	if (!buf) {
		reply_finish(rq->r, CTL_FAILED, "out of memory");
		return;
	}
	report_metrics(buf);
	reply_buffer(rq->r, '|', buf);
	evbuffer_free(buf);
	reply_finish(rq->r, CTL_OK, "%s", "");
}

static void cmd_pid(const struct request *rq)
{
	int argc = rq->argc;
	char **argv = rq->argv;
	struct target *t;
	int n, found = 0;

	if (argc == 0) {
		reply_putf(rq->r, '|', rq->json ? "{\"pid\":%d}" : "%d", (int)getpid());
		reply_finish(rq->r, CTL_OK, "%s", "");
		return;
	}
	if ((n = resolve(rq, argv[0], &t)) < 0)
		return;
	if (rq->json)
		reply_putf(rq->r, '|', "[");
	for (int i = 0; i < n; i++) {
		struct worker *w;
		TAILQ_FOREACH(w, &t[i].prog->workers, link) {
			if (t[i].slot >= 0 && w->slot != t[i].slot)
				continue;
			if (rq->json)
				reply_putf(rq->r, '|', "%s{\"program\":\"%s\",\"slot\":%d,\"pid\":%d,\"state\":\"%s\"}",
				     found ? "," : "", t[i].prog->cfg.name, w->slot, (int)w->pid,
				     pool_state_name(w->state));
			else
				reply_putf(rq->r, '|', "%d", (int)w->pid);
			found++;
		}
	}
	if (rq->json)
		reply_putf(rq->r, '|', "]");
	free(t);
	if (found)
		reply_finish(rq->r, CTL_OK, "%s", "");
	else
		reply_finish(rq->r, CTL_FAILED, "no worker process for %s", argv[0]);
}

static void cmd_signal(const struct request *rq)
{
	char **argv = rq->argv;
	struct target *t;
	int sig = config_parse_signal(argv[1]), n, sent = 0;

	if (sig <= 0) {
		reply_finish(rq->r, CTL_USAGE, "unknown signal '%s' (use a name such as TERM, HUP, USR1, or a number)",
		       argv[1]);
		return;
	}
	if ((n = resolve(rq, argv[0], &t)) < 0)
		return;
	for (int i = 0; i < n; i++) {
		struct worker *w;
		TAILQ_FOREACH(w, &t[i].prog->workers, link) {
			if (t[i].slot >= 0 && w->slot != t[i].slot)
				continue;
			if (kill(-w->pid, sig) == 0 || kill(w->pid, sig) == 0) {
				reply_putf(rq->r, '>', "%s:%d pid %d: SIG%s", t[i].prog->cfg.name, w->slot,
				     (int)w->pid, config_signal_name(sig));
				sent++;
			}
		}
	}
	free(t);
	log_info("control: signal %s %s uid=%d workers=%d", argv[0], config_signal_name(sig),
		 rq->uid, sent);
	if (sent)
		reply_finish(rq->r, CTL_OK, "sent SIG%s to %d worker%s", config_signal_name(sig), sent,
		       sent == 1 ? "" : "s");
	else
		reply_finish(rq->r, CTL_FAILED, "no worker process for %s", argv[0]);
}

static void cmd_drain(const struct request *rq)
{
	char **argv = rq->argv;
	struct target *t;
	int n, drained = 0;

	if ((n = resolve(rq, argv[0], &t)) < 0)
		return;
	for (int i = 0; i < n; i++)
		for (int k = 0; k < t[i].prog->nslots; k++) {
			struct slot *s = t[i].prog->slots[k];
			if (t[i].slot >= 0 && t[i].slot != k)
				continue;
			drained += pool_slot_live(s);
			pool_slot_hold(s);
		}
	free(t);
	log_info("control: drain %s uid=%d workers=%d", argv[0], rq->uid, drained);
	reply_finish(rq->r, CTL_OK, "draining %d worker%s; they stay down until started", drained,
	       drained == 1 ? "" : "s");
}

static void cmd_scale(const struct request *rq)
{
	char **argv = rq->argv;
	struct program *p;
	char *end, err[256];
	long n;

	if (strchr(argv[0], ':') || strcmp(argv[0], "all") == 0) {
		reply_finish(rq->r, CTL_USAGE, "scale takes a program name, not '%s'", argv[0]);
		return;
	}
	if (!(p = pool_find(argv[0]))) {
		reply_finish(rq->r, CTL_USAGE, "no such program '%s'", argv[0]);
		return;
	}
	errno = 0;
	n = strtol(argv[1], &end, 10);
	if (errno || *end || !argv[1][0] || argv[1][0] == '+' || n < 0 || n > 1024) {
		reply_finish(rq->r, CTL_USAGE, "scale: want a number of workers 0..1024, got '%s'", argv[1]);
		return;
	}
	if (ops_scale(p, (int)n, rq->r, err, sizeof(err)) < 0)
		reply_finish(rq->r, CTL_FAILED, "%s", err);
}

static void cmd_help(const struct request *rq)
{
	int argc = rq->argc;
	char **argv = rq->argv;
	char line[256];
	if (argc == 1) {
		const struct ctl_command *cmd = ctl_find(argv[0]);
		if (!cmd) {
			reply_finish(rq->r, CTL_USAGE, "no such command '%s'", argv[0]);
			return;
		}
		reply_putf(rq->r, '|', "usage: batonctl %s", cmd->usage);
		reply_putf(rq->r, '|', "%s", cmd->help);
		reply_finish(rq->r, CTL_OK, "%s", "");
		return;
	}
	for (const struct ctl_command *cmd = ctl_commands; cmd->name; cmd++) {
		ctl_help_line(cmd, line, sizeof(line));
		reply_putf(rq->r, '|', "%s", line);
	}
	reply_putf(rq->r, '|', "%s", CTL_NAME_HELP);
	reply_finish(rq->r, CTL_OK, "%s", "");
}

/* start, stop, restart: an operation over the target's slots. */
static void run_slots(const struct request *rq, enum op_kind kind)
{
	struct target *t;
	char err[256];
	int n;

	if ((n = resolve(rq, rq->argv[0], &t)) < 0)
		return;
	int rc = ops_slots(kind, rq->argv[0], t, n, rq->r, err, sizeof(err));
	free(t);
	if (rc < 0)
		reply_finish(rq->r, CTL_FAILED, "%s", err);
}

static void cmd_start(const struct request *rq)
{
	run_slots(rq, OP_START);
}

static void cmd_stop(const struct request *rq)
{
	run_slots(rq, OP_STOP);
}

static void cmd_restart(const struct request *rq)
{
	run_slots(rq, OP_RESTART);
}

static void cmd_version(const struct request *rq)
{
	if (rq->json)
		reply_putf(rq->r, '|', "{\"version\":\"%s\",\"control\":\"%s\",\"worker_protocol\":%d}",
			   BATON_VERSION, CTL_VERSION, PROTO_VERSION);
	else
		reply_putf(rq->r, '|', "batond %s (control %s, worker protocol %d)", BATON_VERSION,
			   CTL_VERSION, PROTO_VERSION);
	reply_finish(rq->r, CTL_OK, "%s", "");
}

static void cmd_shutdown(const struct request *rq)
{
	log_info("control: shutdown uid=%d pid=%d", rq->uid, rq->pid);
	reply_finish(rq->r, CTL_OK, "shutting down: draining workers");
	ops_shutdown("control");
}

static void cmd_reexec(const struct request *rq)
{
	if (rq->argc == 1 || (rq->argc == 2 && strcmp(rq->argv[0], "--binary") != 0)) {
		reply_finish(rq->r, CTL_USAGE, "usage: batonctl reexec [--binary PATH]");
		return;
	}
	log_info("control: reexec uid=%d pid=%d", rq->uid, rq->pid);
	reexec_start(rq->r, rq->argc == 2 ? rq->argv[1] : NULL);
}

/* Every command of ctl_commands[] and its handler (command_check says so). */
static const struct {
	const char *name;
	void (*run)(const struct request *rq);
} handlers[] = {
	{"status", cmd_status},   {"start", cmd_start},     {"stop", cmd_stop},
	{"restart", cmd_restart}, {"scale", cmd_scale},     {"upgrade", cmd_upgrade},
	{"reload", cmd_reload},   {"drain", cmd_drain},     {"signal", cmd_signal},
	{"pid", cmd_pid},         {"metrics", cmd_metrics}, {"version", cmd_version},
	{"shutdown", cmd_shutdown}, {"help", cmd_help},     {"reexec", cmd_reexec},
};
#define NHANDLERS (sizeof(handlers) / sizeof(handlers[0]))

static void (*handler_of(const char *name))(const struct request *)
{
	for (size_t i = 0; i < NHANDLERS; i++)
		if (strcmp(handlers[i].name, name) == 0)
			return handlers[i].run;
	return NULL;
}

int command_check(char *err, size_t errlen)
{
	size_t n = 0;
	for (const struct ctl_command *cmd = ctl_commands; cmd->name; cmd++, n++)
		if (!handler_of(cmd->name)) {
			snprintf(err, errlen, "control command '%s' has no handler", cmd->name);
			return -1;
		}
	for (size_t i = 0; i < NHANDLERS; i++)
		if (!ctl_find(handlers[i].name)) {
			snprintf(err, errlen, "handler '%s' is not a control command", handlers[i].name);
			return -1;
		}
	return n == NHANDLERS ? 0 : (snprintf(err, errlen, "control commands and handlers differ"), -1);
}

void command_run(const struct ctl_request *req, const struct command_peer *peer,
		 const struct reply *r)
{
	const struct ctl_command *cmd = ctl_find(req->argv[0]);
	struct request rq = {.r = r, .json = req->json, .uid = (int)peer->uid,
			     .pid = (int)peer->pid, .argc = req->argc - 1,
			     .argv = (char **)req->argv + 1};
	char err[256];

	if (!cmd) {
		reply_finish(r, CTL_USAGE, "unknown command '%s' (try help)", req->argv[0]);
		return;
	}
	if (ctl_check_args(cmd, rq.argc, err, sizeof(err)) < 0) {
		reply_finish(r, CTL_USAGE, "%s", err);
		return;
	}
	if (!cmd->read_only && !peer->full) {
		log_warn("control: refused '%s' to read-only client uid=%d pid=%d", cmd->name,
			 rq.uid, rq.pid);
		reply_finish(r, CTL_DENIED, "permission denied: '%s' needs more than read-only access",
			     cmd->name);
		return;
	}
	if (batond.shutting_down && !cmd->read_only) {
		reply_finish(r, CTL_FAILED, "batond is shutting down");
		return;
	}
	void (*run)(const struct request *) = handler_of(cmd->name);
	if (!run) { /* command_check() at start-up makes this a bug */
		log_error("control: no handler for command '%s'", cmd->name);
		reply_finish(r, CTL_FAILED, "internal error: batond has no handler for '%s'", cmd->name);
		return;
	}
	run(&rq);
}
