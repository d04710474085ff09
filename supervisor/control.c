#include "control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "batond.h"
#include "config.h"
#include "ctl.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "pool.h"
#include "proto.h"
#include "reload.h"
#include "report.h"
#include "version.h"

enum access { ACCESS_NONE, ACCESS_READ, ACCESS_FULL };

struct op;

struct client {
	LIST_ENTRY(client) link;
	struct bufferevent *bev;
	pid_t pid;
	uid_t uid;
	enum access access;
	int answered; /* the "=" line is queued: close once it is written */
	int json;
	struct op *op;
};

/* One slot an operation works on, and where it is with it. */
struct op_slot {
	struct program *prog;
	int slot;
	int phase;   /* per kind: 0 not begun, 1 waiting, 2 done */
	pid_t old_pid, new_pid;
};

enum op_kind { OP_START, OP_STOP, OP_RESTART, OP_SCALE, OP_UPGRADE, OP_RELOAD };

struct op {
	LIST_ENTRY(op) link;
	enum op_kind kind;
	struct client *client; /* NULL once the client left: the op goes on */
	char what[64];         /* "restart web", for logs */
	struct op_slot *s;
	int n;
	struct program *prog; /* scale, upgrade */
	int target;           /* scale */
	/* upgrade */
	int old_gen, new_gen, batch, cursor;
	int rolling_back, aborted;
	/* reload: the scale and upgrade operations it started */
	struct op *parent;
	int children, children_failed;
	char failure[CTL_LINE_MAX - 64];
	uint64_t started_ms;
};

static struct {
	int fd;
	struct event *ev;
	struct event *ev_retry; /* out of fds: accept again on a timer */
	uint64_t accept_retries;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
	gid_t group;
	int have_group, group_write;
	unsigned mode;
	LIST_HEAD(, client) clients;
	LIST_HEAD(, op) ops;
	int nclients;
	uint64_t requests, refused_busy, refused_denied, bad_requests;
} ctl = {.fd = -1};

static const char *const op_names[] = {"start", "stop", "restart", "scale", "upgrade", "reload"};

/* Where an operation's progress goes: a reload's children report to it. */
static struct client *op_client(const struct op *op)
{
	return op->parent ? op->parent->client : op->client;
}

/* ---- output ---- */

static void client_free(struct client *c)
{
	if (c->op)
		c->op->client = NULL;
	LIST_REMOVE(c, link);
	ctl.nclients--;
	bufferevent_free(c->bev);
	free(c);
}

/* Append text as lines of the given kind, cutting lines to the limit. */
static void put_lines(struct client *c, char kind, const char *text, size_t len)
{
	struct evbuffer *out;
	size_t max = CTL_LINE_MAX - 3; /* "K " and '\n' */

	if (!c || c->answered)
		return;
	out = bufferevent_get_output(c->bev);
	while (len) {
		const char *nl = memchr(text, '\n', len);
		size_t n = nl ? (size_t)(nl - text) : len;
		size_t take = n > max ? max : n;
		evbuffer_add_printf(out, "%c ", kind);
		evbuffer_add(out, text, take);
		evbuffer_add(out, "\n", 1);
		if (take < n) {
			text += take;
			len -= take;
			continue;
		}
		text += n + (nl ? 1 : 0);
		len -= n + (nl ? 1 : 0);
	}
}

static void putf(struct client *c, char kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void putf(struct client *c, char kind, const char *fmt, ...)
{
	char line[CTL_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	put_lines(c, kind, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void put_buffer(struct client *c, struct evbuffer *buf)
{
	size_t len = evbuffer_get_length(buf);
	const char *text = (const char *)evbuffer_pullup(buf, -1);
	if (text)
		put_lines(c, '|', text, len);
}

/* The last line; the client is closed once it has been written. */
static void finish(struct client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void finish(struct client *c, int code, const char *fmt, ...)
{
	char text[CTL_LINE_MAX - 8];
	va_list ap;

	if (!c || c->answered)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (char *t = text; *t; t++)
		if (*t == '\n' || (unsigned char)*t < 0x20 || (unsigned char)*t > 0x7e)
			*t = ' ';
	evbuffer_add_printf(bufferevent_get_output(c->bev), "= %d%s%s\n", code,
			    text[0] ? " " : "", text);
	c->answered = 1;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
}

/* ---- operations that wait for the pool ---- */

static struct slot *op_slot(const struct op_slot *os)
{
	return os->slot < os->prog->nslots ? os->prog->slots[os->slot] : NULL;
}

static int slot_has_workers(const struct slot *s)
{
	struct worker *w;
	TAILQ_FOREACH(w, &s->prog->workers, link)
		if (w->slot == s->index)
			return 1;
	return 0;
}

static struct worker *slot_running(const struct slot *s)
{
	struct worker *w = pool_slot_worker(s);
	return w && w->state == WS_RUNNING ? w : NULL;
}

static void op_free(struct op *op)
{
	struct op *o;
	LIST_FOREACH(o, &ctl.ops, link)
		if (o->parent == op)
			o->parent = NULL; /* orphaned children carry on silently */
	if (op->client)
		op->client->op = NULL;
	if (op->kind == OP_RELOAD)
		notify_reloaded();
	LIST_REMOVE(op, link);
	free(op->s);
	free(op);
}

static void op_end(struct op *op, int code, const char *msg)
{
	uint64_t ms = now_ms() - op->started_ms;
	struct op *parent = op->parent;

	log_msg(code ? LOGL_WARN : LOGL_INFO, "control: %s %s in %llums%s%s",
		op->what, code ? "failed" : "done", (unsigned long long)ms,
		code ? ": " : "", code ? msg : "");
	if (parent) {
		putf(parent->client, '>', "%s: %s", op->what, msg);
		parent->children--;
		parent->children_failed += code != 0;
	} else {
		finish(op->client, code, "%s", msg);
	}
	op_free(op);
	if (parent && parent->children == 0) {
		if (parent->children_failed)
			op_end(parent, CTL_FAILED, "reload applied, but some changes failed (see above)");
		else
			op_end(parent, CTL_OK, "reloaded");
	}
}

/* Waiting for a slot to have a RUNNING worker: 1 yes, 0 not yet, -1 never. */
static int wait_running(struct op *op, struct op_slot *os, char *why, size_t size)
{
	struct slot *s = op_slot(os);
	struct worker *w;

	if (!s || s->removing) {
		snprintf(why, size, "%s:%d was removed", os->prog->cfg.name, os->slot);
		return -1;
	}
	if ((w = slot_running(s))) {
		if (os->phase < 2)
			putf(op_client(op), '>', "%s:%d running pid %d", os->prog->cfg.name,
			     os->slot, (int)w->pid);
		os->phase = 2;
		return 1;
	}
	if (s->state == SLOT_FATAL) {
		snprintf(why, size, "%s:%d is FATAL: %s", os->prog->cfg.name, os->slot,
			 s->last_exit);
		return -1;
	}
	if (s->held) {
		snprintf(why, size, "%s:%d was stopped meanwhile", os->prog->cfg.name, os->slot);
		return -1;
	}
	if (s->state == SLOT_EXITED || s->state == SLOT_STOPPED) {
		snprintf(why, size, "%s:%d exited: %s", os->prog->cfg.name, os->slot,
			 s->last_exit);
		return -1;
	}
	if (s->state == SLOT_BACKOFF && os->phase != 3) {
		putf(op_client(op), '>', "%s:%d failed to start (%s), retrying", os->prog->cfg.name,
		     os->slot, s->last_exit);
		os->phase = 3; /* reported; the next start attempt resets it */
	} else if (s->state == SLOT_UP) {
		os->phase = 1;
	}
	return 0;
}

/* Rolling restart of one slot: 1 done, 0 waiting, -1 failed. */
static int restart_step(struct op *op, struct op_slot *os, char *why, size_t size)
{
	struct slot *s = op_slot(os);
	const char *name = os->prog->cfg.name;
	struct worker *w;

	if (!s || s->removing) {
		snprintf(why, size, "%s:%d was removed", name, os->slot);
		return -1;
	}
	if (os->phase == 0) {
		struct worker *old = pool_slot_worker(s);
		os->old_pid = old ? old->pid : 0;
		w = pool_slot_replace(s, s->generation);
		if (!w) {
			snprintf(why, size, "%s:%d: cannot start a worker: %s", name, os->slot,
				 s->last_exit[0] ? s->last_exit : "fork failed");
			return -1;
		}
		os->new_pid = w->pid;
		os->phase = 1;
		if (os->old_pid)
			putf(op_client(op), '>', "%s:%d started pid %d to replace pid %d", name,
			     os->slot, (int)w->pid, (int)os->old_pid);
		else
			putf(op_client(op), '>', "%s:%d started pid %d", name, os->slot, (int)w->pid);
	}
	w = pool_find_pid(os->new_pid);
	if (!w || w->prog != os->prog || w->state == WS_STOPPING || w->broken) {
		struct worker *old = os->old_pid ? pool_find_pid(os->old_pid) : NULL;
		if (old && old->prog == os->prog && !old->retiring && !old->broken)
			snprintf(why, size, "%s:%d: new worker pid %d failed (%s); pid %d keeps serving",
				 name, os->slot, (int)os->new_pid, s->last_exit, (int)os->old_pid);
		else if (os->old_pid)
			snprintf(why, size,
				 "%s:%d: new worker pid %d failed (%s), and pid %d exited meanwhile; "
				 "the slot restarts as after a crash",
				 name, os->slot, (int)os->new_pid, s->last_exit, (int)os->old_pid);
		else
			snprintf(why, size, "%s:%d: new worker pid %d failed (%s)", name, os->slot,
				 (int)os->new_pid, s->last_exit);
		return -1;
	}
	if (w->state != WS_RUNNING)
		return 0;
	struct worker *old = os->old_pid ? pool_find_pid(os->old_pid) : NULL;
	if (old && old->prog == os->prog) {
		putf(op_client(op), '>', "%s:%d pid %d ready, draining pid %d", name, os->slot,
		     (int)w->pid, (int)old->pid);
		pool_drain_worker(old);
	} else {
		putf(op_client(op), '>', "%s:%d pid %d ready", name, os->slot, (int)w->pid);
	}
	os->phase = 2;
	return 1;
}

/* Re-check one operation; returns 1 when it ended (and was freed). */
static int upgrade_check(struct op *op);

static int op_check(struct op *op)
{
	char why[CTL_LINE_MAX - 16];
	int pending = 0;

	if (batond.shutting_down) {
		op_end(op, CTL_FAILED, "batond is shutting down");
		return 1;
	}
	if (op->kind == OP_UPGRADE)
		return upgrade_check(op);
	if (op->kind == OP_RELOAD)
		return 0; /* ends with its last child */
	for (int i = 0; i < op->n; i++) {
		struct op_slot *os = &op->s[i];
		struct slot *s = op_slot(os);
		int r = 1;
		if (os->phase == 2)
			continue;
		switch (op->kind) {
		case OP_START:
			r = wait_running(op, os, why, sizeof(why));
			break;
		case OP_STOP:
			if (s && !s->held) {
				snprintf(why, sizeof(why), "%s:%d was started again before it stopped",
					 os->prog->cfg.name, os->slot);
				r = -1;
			} else if (s && slot_has_workers(s)) {
				r = 0;
			} else {
				putf(op_client(op), '>', "%s:%d stopped", os->prog->cfg.name, os->slot);
				os->phase = 2;
			}
			break;
		case OP_RESTART:
			r = restart_step(op, os, why, sizeof(why));
			if (r == 0) {
				pending = 1;
				i = op->n; /* one slot at a time */
				continue;
			}
			break;
		case OP_UPGRADE:
		case OP_RELOAD:
			break;
		case OP_SCALE:
			if (os->slot < op->target) {
				r = wait_running(op, os, why, sizeof(why));
			} else if (s && !s->removing) {
				snprintf(why, sizeof(why), "%s:%d was kept by a later scale or start",
					 os->prog->cfg.name, os->slot);
				r = -1;
			} else if (s) {
				r = 0; /* removed when its workers are gone */
			} else {
				putf(op_client(op), '>', "%s:%d removed", os->prog->cfg.name, os->slot);
				os->phase = 2;
			}
			break;
		}
		if (r < 0) {
			op_end(op, CTL_FAILED, why);
			return 1;
		}
		if (r == 0)
			pending = 1;
	}
	if (pending)
		return 0;
	switch (op->kind) {
	case OP_START:
		op_end(op, CTL_OK, op->n == 1 ? "started" : "all started");
		break;
	case OP_STOP:
		op_end(op, CTL_OK, "stopped");
		break;
	case OP_RESTART:
		op_end(op, CTL_OK, "restarted");
		break;
	case OP_SCALE:
		snprintf(why, sizeof(why), "%s scaled to %d", op->prog->cfg.name, op->target);
		op_end(op, CTL_OK, why);
		break;
	case OP_UPGRADE:
	case OP_RELOAD:
		break;
	}
	return 1;
}

void control_pool_changed(void)
{
	static int busy, again;
	struct op *op;

	if (busy) {
		again = 1; /* an op's action changed the pool: loop once more */
		return;
	}
	busy = 1;
	do {
		again = 0;
		/* An op that ends may end its parent too: start over then. */
		for (op = LIST_FIRST(&ctl.ops); op;)
			op = op_check(op) ? LIST_FIRST(&ctl.ops) : LIST_NEXT(op, link);
	} while (again);
	busy = 0;
	notify_pool_changed();
}

static struct op *op_new_for(struct client *c, struct op *parent, enum op_kind kind,
			     const char *name)
{
	struct op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->kind = kind;
	op->client = c;
	op->started_ms = now_ms();
	snprintf(op->what, sizeof(op->what), "%s %s", op_names[kind], name);
	if (c)
		c->op = op;
	if (parent) {
		op->parent = parent;
		parent->children++;
	}
	LIST_INSERT_HEAD(&ctl.ops, op, link);
	return op;
}

static struct op *op_new(struct client *c, enum op_kind kind, const char *name)
{
	return op_new_for(c, NULL, kind, name);
}

static int op_add(struct op *op, struct program *p, int slot)
{
	struct op_slot *v = realloc(op->s, (op->n + 1) * sizeof(*v));
	if (!v)
		return -1;
	op->s = v;
	op->s[op->n++] = (struct op_slot){.prog = p, .slot = slot};
	return 0;
}

/* Expand targets into the op's slots; -1 on ENOMEM. */
static int op_add_targets(struct op *op, const struct target *t, int n)
{
	for (int i = 0; i < n; i++) {
		struct program *p = t[i].prog;
		for (int k = 0; k < p->nslots; k++)
			if ((t[i].slot < 0 && !p->slots[k]->removing) || t[i].slot == k)
				if (op_add(op, p, k) < 0)
					return -1;
	}
	return 0;
}


/*
 * Rolling upgrade.  Slots go in batches of upgrade_batch: start a worker
 * of the new generation next to each old one, wait until all of the batch
 * are ready, then drain the old ones and go on.  If a new worker fails
 * (exits, or is not ready within ready_timeout) or --abort is asked, roll
 * back: new workers still starting are stopped, and every slot already
 * switched gets a worker of the old generation again (the new one is
 * drained once that is ready).  Phases of an op_slot: 0 old serving,
 * 1 new starting, 2 switched to new, 4 old-generation worker starting
 * again, 5 back on old.
 */
static void upgrade_fail(struct op *op, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void upgrade_fail(struct op *op, const char *fmt, ...)
{
	va_list ap;
	if (op->rolling_back)
		return;
	va_start(ap, fmt);
	vsnprintf(op->failure, sizeof(op->failure), fmt, ap);
	va_end(ap);
	op->rolling_back = 1;
	putf(op_client(op), '>', "%s; rolling back to generation %d", op->failure, op->old_gen);
	log_warn("upgrade failed program=%s generation=%d reason=\"%s\"; rolling back",
		 op->prog->cfg.name, op->new_gen, op->failure);
	for (int i = 0; i < op->n; i++) {
		struct op_slot *os = &op->s[i];
		struct worker *w;
		if (os->phase == 1 && (w = pool_find_pid(os->new_pid)) && w->prog == op->prog) {
			w->replacement = 1; /* its exit must not restart the slot */
			pool_stop_worker(w);
		}
		if (os->phase == 1)
			os->phase = 0;
	}
}

static int new_gen_left(const struct op *op)
{
	struct worker *w;
	int n = 0;
	TAILQ_FOREACH(w, &op->prog->workers, link)
		n += w->generation == op->new_gen;
	return n;
}

static int upgrade_rollback(struct op *op)
{
	char why[CTL_LINE_MAX - 16];
	int pending = 0;

	for (int i = 0; i < op->n; i++) {
		struct op_slot *os = &op->s[i];
		struct slot *s = op_slot(os);
		struct worker *w;
		if (!s || (os->phase != 2 && os->phase != 4))
			continue;
		if (os->phase == 2) {
			struct worker *cur = pool_slot_worker(s);
			os->old_pid = cur ? cur->pid : 0;
			w = pool_slot_replace(s, op->old_gen);
			if (!w) {
				snprintf(why, sizeof(why), "%s; rollback failed too: cannot start %s:%d",
					 op->failure, op->prog->cfg.name, os->slot);
				op->prog->upgrades[UPGRADE_FAILED]++;
				op_end(op, CTL_FAILED, why);
				return 1;
			}
			os->new_pid = w->pid;
			os->phase = 4;
			putf(op_client(op), '>', "%s:%d started pid %d (generation %d) to replace pid %d",
			     op->prog->cfg.name, os->slot, (int)w->pid, op->old_gen, (int)os->old_pid);
		}
		w = pool_find_pid(os->new_pid);
		if (!w || w->prog != op->prog || w->state == WS_STOPPING || w->broken) {
			snprintf(why, sizeof(why), "%s; rollback failed too: %s:%d: %s", op->failure,
				 op->prog->cfg.name, os->slot, s->last_exit);
			op->prog->upgrades[UPGRADE_FAILED]++;
			op_end(op, CTL_FAILED, why);
			return 1;
		}
		if (w->state != WS_RUNNING) {
			pending = 1;
			continue;
		}
		struct worker *newer = pool_find_pid(os->old_pid);
		if (newer && newer->prog == op->prog)
			pool_drain_worker(newer);
		s->generation = op->old_gen;
		os->phase = 5;
		putf(op_client(op), '>', "%s:%d back on generation %d, pid %d", op->prog->cfg.name,
		     os->slot, op->old_gen, (int)w->pid);
	}
	if (pending || new_gen_left(op))
		return 0; /* wait until no worker of the new generation is left */
	op->prog->upgrades[op->aborted ? UPGRADE_ABORTED : UPGRADE_FAILED]++;
	if (op->prog->old_cfg && op->prog->old_cfg_generation == op->old_gen) {
		pool_revert_cfg(op->prog);
		log_warn("program=%s runs its previous configuration again; the file's is not applied",
			 op->prog->cfg.name);
	}
	snprintf(why, sizeof(why), "upgrade of %s %s: %s; generation %d serves at full count",
		 op->prog->cfg.name, op->aborted ? "aborted" : "failed", op->failure, op->old_gen);
	op_end(op, CTL_FAILED, why);
	return 1;
}

static int upgrade_check(struct op *op)
{
	struct program *p = op->prog;

	if (op->rolling_back)
		return upgrade_rollback(op);
	/* A new worker that already took over its slot and then died fails
	 * the upgrade as well: the release is broken under traffic. */
	for (int i = 0; i < op->cursor; i++) {
		struct op_slot *os = &op->s[i];
		struct slot *s = op_slot(os);
		struct worker *w = pool_find_pid(os->new_pid);
		if (os->phase == 2 && (!w || w->prog != p || w->broken || w->state == WS_STOPPING)) {
			upgrade_fail(op, "%s:%d: new worker pid %d exited after taking over: %s",
				     p->cfg.name, os->slot, (int)os->new_pid,
				     s ? s->last_exit : "slot removed");
			return upgrade_rollback(op);
		}
	}
	while (op->cursor < op->n) {
		int end = op->cursor + op->batch, waiting = 0;
		if (end > op->n)
			end = op->n;
		for (int i = op->cursor; i < end; i++) {
			struct op_slot *os = &op->s[i];
			struct slot *s = op_slot(os);
			struct worker *w;
			if (!s || s->removing) {
				upgrade_fail(op, "%s:%d was removed during the upgrade", p->cfg.name, os->slot);
				return upgrade_rollback(op);
			}
			if (os->phase == 0) {
				struct worker *old = pool_slot_worker(s);
				os->old_pid = old ? old->pid : 0;
				w = pool_slot_replace(s, op->new_gen);
				if (!w) {
					upgrade_fail(op, "%s:%d: cannot start a worker", p->cfg.name, os->slot);
					return upgrade_rollback(op);
				}
				os->new_pid = w->pid;
				os->phase = 1;
				putf(op_client(op), '>', "%s:%d started pid %d (generation %d)%s", p->cfg.name,
				     os->slot, (int)w->pid, op->new_gen, old ? "" : ", slot had no worker");
			}
			w = pool_find_pid(os->new_pid);
			if (!w || w->prog != p || w->state == WS_STOPPING || w->broken) {
				upgrade_fail(op, "%s:%d: new worker pid %d failed: %s", p->cfg.name,
					     os->slot, (int)os->new_pid, s->last_exit);
				return upgrade_rollback(op);
			}
			if (w->state != WS_RUNNING)
				waiting = 1;
		}
		if (waiting)
			return 0;
		/* The whole batch is ready: now the old ones may go. */
		for (int i = op->cursor; i < end; i++) {
			struct op_slot *os = &op->s[i];
			struct worker *old = os->old_pid ? pool_find_pid(os->old_pid) : NULL;
			struct slot *s = op_slot(os);
			s->generation = op->new_gen;
			os->phase = 2;
			if (old && old->prog == p) {
				pool_drain_worker(old);
				putf(op_client(op), '>', "%s:%d pid %d ready, draining pid %d", p->cfg.name,
				     os->slot, (int)os->new_pid, (int)old->pid);
			} else {
				putf(op_client(op), '>', "%s:%d pid %d ready", p->cfg.name, os->slot,
				     (int)os->new_pid);
			}
		}
		op->cursor = end;
	}
	p->generation = op->new_gen;
	p->upgrades[UPGRADE_OK]++;
	pool_forget_old_cfg(p); /* the previous generation is gone */
	char msg[128];
	snprintf(msg, sizeof(msg), "%s upgraded to generation %d", p->cfg.name, op->new_gen);
	op_end(op, CTL_OK, msg);
	return 1;
}

static struct op *upgrade_of(const struct program *p)
{
	struct op *op;
	LIST_FOREACH(op, &ctl.ops, link)
		if (op->kind == OP_UPGRADE && op->prog == p)
			return op;
	return NULL;
}

/* Is p busy with an operation that must not be mixed with another? */
static struct op *busy_with(const struct program *p)
{
	struct op *op;
	LIST_FOREACH(op, &ctl.ops, link) {
		if (op->prog == p && (op->kind == OP_UPGRADE || op->kind == OP_SCALE))
			return op;
		if (op->kind == OP_RESTART)
			for (int i = 0; i < op->n; i++)
				if (op->s[i].prog == p)
					return op;
	}
	return NULL;
}

/* Start an upgrade of p; c may be NULL (SIGUSR2).  0, or -1 with err. */
static int upgrade_start(struct client *c, struct op *parent, struct program *p, char *err,
			 size_t errlen)
{
	struct op *op, *busy = busy_with(p);

	if (busy) {
		snprintf(err, errlen, "%s is busy: %s is in progress%s", p->cfg.name, busy->what,
			 busy->kind == OP_UPGRADE ? " (batonctl upgrade --abort to roll it back)" : "");
		return -1;
	}
	op = op_new_for(c, parent, OP_UPGRADE, p->cfg.name);
	if (!op) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	op->prog = p;
	op->old_gen = p->generation;
	op->new_gen = p->generation + 1;
	op->batch = (int)p->cfg.upgrade_batch > 0 ? (int)p->cfg.upgrade_batch : 1;
	for (int i = 0; i < p->nslots; i++)
		if (!p->slots[i]->removing && op_add(op, p, i) < 0) {
			if (parent)
				parent->children--;
			op_free(op);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	if (op->n == 0) {
		if (parent)
			parent->children--;
		op_free(op);
		snprintf(err, errlen, "%s has no workers to upgrade", p->cfg.name);
		return -1;
	}
	log_info("upgrade started program=%s from_generation=%d to_generation=%d batch=%d uid=%d",
		 p->cfg.name, op->old_gen, op->new_gen, op->batch, c ? (int)c->uid : -1);
	putf(op_client(op), '>', "%s: generation %d -> %d, %d worker%s, %d at a time", p->cfg.name,
	     op->old_gen, op->new_gen, op->n, op->n == 1 ? "" : "s", op->batch);
	control_pool_changed();
	return 0;
}

void control_upgrade_all(void)
{
	struct program *p;
	char err[256];
	TAILQ_FOREACH(p, &batond.programs, link)
		if (upgrade_start(NULL, NULL, p, err, sizeof(err)) < 0)
			log_warn("SIGUSR2: not upgrading program=%s reason=\"%s\"", p->cfg.name, err);
}

static void cmd_upgrade(struct client *c, int argc, char **argv)
{
	const char *name = argv[argc - 1];
	int abort_it = argc == 2;
	struct program *p;
	char err[256];

	if (argc == 2 && strcmp(argv[0], "--abort") != 0) {
		finish(c, CTL_USAGE, "usage: batonctl upgrade [--abort] NAME");
		return;
	}
	if (strcmp(name, "all") == 0 && !abort_it) {
		finish(c, CTL_USAGE, "upgrade one program at a time (or send batond SIGUSR2 for all)");
		return;
	}
	if (strchr(name, ':') || !(p = pool_find(name))) {
		finish(c, CTL_USAGE, "upgrade takes a program name: no such program '%s'", name);
		return;
	}
	if (abort_it) {
		struct op *op = upgrade_of(p);
		if (!op) {
			finish(c, CTL_FAILED, "no upgrade of %s is in progress", p->cfg.name);
			return;
		}
		if (op->rolling_back) {
			finish(c, CTL_OK, "the upgrade of %s is already rolling back", p->cfg.name);
			return;
		}
		op->aborted = 1;
		upgrade_fail(op, "aborted by uid %d", (int)c->uid);
		finish(c, CTL_OK, "rolling back the upgrade of %s to generation %d", p->cfg.name,
		       op->old_gen);
		control_pool_changed();
		return;
	}
	if (upgrade_start(c, NULL, p, err, sizeof(err)) < 0)
		finish(c, CTL_FAILED, "%s", err);
}


/* ---- reload ---- */

static int scale_start(struct client *c, struct op *parent, struct program *p, int n,
		       char *err, size_t errlen);

static void reload_upgrade(struct program *p, void *arg)
{
	char err[256];
	if (upgrade_start(NULL, arg, p, err, sizeof(err)) < 0) {
		struct op *parent = arg;
		log_warn("reload: cannot upgrade program=%s reason=\"%s\"", p->cfg.name, err);
		if (parent) {
			putf(parent->client, '>', "upgrade %s: %s", p->cfg.name, err);
			parent->children_failed++;
		}
	}
}

static void reload_scale(struct program *p, int n, void *arg)
{
	char err[256];
	if (scale_start(NULL, arg, p, n, err, sizeof(err)) < 0) {
		struct op *parent = arg;
		log_warn("reload: cannot scale program=%s reason=\"%s\"", p->cfg.name, err);
		if (parent) {
			putf(parent->client, '>', "scale %s: %s", p->cfg.name, err);
			parent->children_failed++;
		}
	}
}

/*
 * Reload the configuration file.  c may be NULL (SIGHUP).  With dry_run
 * only the plan is shown.  Answers when every scale and upgrade it
 * started has ended.
 */
static void reload(struct client *c, int dry_run)
{
	char err[16384];
	struct op *op;

	LIST_FOREACH(op, &ctl.ops, link)
		if (!dry_run) {
			log_warn("reload refused: %s is in progress", op->what);
			finish(c, CTL_FAILED, "busy: %s is in progress; try again when it ends", op->what);
			return;
		}
	struct reload_plan *plan = reload_prepare(batond.config_path, err, sizeof(err));
	if (!plan) {
		for (char *line = err, *nl; *line; line = nl + 1) {
			if (!(nl = strchr(line, '\n')))
				nl = line + strlen(line) - 1;
			log_error("reload: %.*s", (int)(nl - line + (*nl != '\n')), line);
		}
		put_lines(c, '|', err, strlen(err));
		finish(c, CTL_FAILED, "reload failed: nothing changed");
		return;
	}
	struct evbuffer *buf = evbuffer_new();
	if (!buf) {
		reload_free(plan);
		finish(c, CTL_FAILED, "out of memory");
		return;
	}
	int changes = reload_describe(plan, buf);
	if (dry_run) {
		put_buffer(c, buf);
		evbuffer_free(buf);
		reload_free(plan);
		finish(c, CTL_OK, "dry run: %d change%s, nothing applied", changes,
		       changes == 1 ? "" : "s");
		return;
	}
	size_t len = evbuffer_get_length(buf);
	const char *text = (const char *)evbuffer_pullup(buf, -1);
	if (text)
		put_lines(c, '>', text, len);
	log_info("reloading config=%s changes=%d", batond.config_path, changes);
	notify_reloading();
	struct op *rop = c ? op_new(c, OP_RELOAD, "config") : op_new_for(NULL, NULL, OP_RELOAD, "config");
	if (!rop) {
		evbuffer_free(buf);
		reload_free(plan);
		finish(c, CTL_FAILED, "out of memory");
		return;
	}
	rop->children = 1; /* held until every child is started */
	if (reload_apply(plan, reload_upgrade, reload_scale, rop, err, sizeof(err)) < 0) {
		log_error("reload failed: %s", err);
		rop->children = 0;
		evbuffer_free(buf);
		reload_free(plan);
		op_end(rop, CTL_FAILED, err);
		return;
	}
	evbuffer_free(buf);
	reload_free(plan);
	/* Release the hold: ends now if nothing was started. */
	rop->children--;
	if (rop->children == 0)
		op_end(rop, rop->children_failed ? CTL_FAILED : CTL_OK,
		       rop->children_failed ? "reload applied, but some changes failed (see above)"
					    : "reloaded");
	else
		control_pool_changed();
}

void control_reload(void)
{
	reload(NULL, 0);
}

static void cmd_reload(struct client *c, int argc, char **argv)
{
	if (argc == 1 && strcmp(argv[0], "--dry-run") != 0) {
		finish(c, CTL_USAGE, "usage: batonctl reload [--dry-run]");
		return;
	}
	reload(c, argc == 1);
}

/* ---- commands ---- */

static int resolve(struct client *c, const char *name, struct target **t)
{
	char err[256];
	int n = report_targets(name, t, err, sizeof(err));
	if (n < 0)
		finish(c, CTL_USAGE, "%s", err);
	return n;
}

static void cmd_status(struct client *c, int argc, char **argv)
{
	struct target *all = NULL;
	int n = 0;

	for (int i = 0; i < argc; i++) {
		struct target *t;
		int k = resolve(c, argv[i], &t);
		if (k < 0) {
			free(all);
			return;
		}
		struct target *v = realloc(all, (n + k) * sizeof(*v));
		if (!v) {
			free(t);
			free(all);
			finish(c, CTL_FAILED, "out of memory");
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
		finish(c, CTL_FAILED, "out of memory");
		return;
	}
	int code = report_status(buf, c->json, all, n, now_ms());
	put_buffer(c, buf);
	evbuffer_free(buf);
	free(all);
	finish(c, code, "%s", code ? "not every worker is RUNNING" : "");
}

static void cmd_metrics(struct client *c)
{
	struct evbuffer *buf = evbuffer_new();
	if (!buf) {
		finish(c, CTL_FAILED, "out of memory");
		return;
	}
	report_metrics(buf);
	control_metrics(buf);
	put_buffer(c, buf);
	evbuffer_free(buf);
	finish(c, CTL_OK, "%s", "");
}

static void cmd_pid(struct client *c, int argc, char **argv)
{
	struct target *t;
	int n, found = 0;

	if (argc == 0) {
		putf(c, '|', c->json ? "{\"pid\":%d}" : "%d", (int)getpid());
		finish(c, CTL_OK, "%s", "");
		return;
	}
	if ((n = resolve(c, argv[0], &t)) < 0)
		return;
	if (c->json)
		putf(c, '|', "[");
	for (int i = 0; i < n; i++) {
		struct worker *w;
		TAILQ_FOREACH(w, &t[i].prog->workers, link) {
			if (t[i].slot >= 0 && w->slot != t[i].slot)
				continue;
			if (c->json)
				putf(c, '|', "%s{\"program\":\"%s\",\"slot\":%d,\"pid\":%d,\"state\":\"%s\"}",
				     found ? "," : "", t[i].prog->cfg.name, w->slot, (int)w->pid,
				     pool_state_name(w->state));
			else
				putf(c, '|', "%d", (int)w->pid);
			found++;
		}
	}
	if (c->json)
		putf(c, '|', "]");
	free(t);
	if (found)
		finish(c, CTL_OK, "%s", "");
	else
		finish(c, CTL_FAILED, "no worker process for %s", argv[0]);
}

static void cmd_signal(struct client *c, char **argv)
{
	struct target *t;
	int sig = config_parse_signal(argv[1]), n, sent = 0;

	if (sig <= 0) {
		finish(c, CTL_USAGE, "unknown signal '%s' (use a name such as TERM, HUP, USR1, or a number)",
		       argv[1]);
		return;
	}
	if ((n = resolve(c, argv[0], &t)) < 0)
		return;
	for (int i = 0; i < n; i++) {
		struct worker *w;
		TAILQ_FOREACH(w, &t[i].prog->workers, link) {
			if (t[i].slot >= 0 && w->slot != t[i].slot)
				continue;
			if (kill(-w->pid, sig) == 0 || kill(w->pid, sig) == 0) {
				putf(c, '>', "%s:%d pid %d: SIG%s", t[i].prog->cfg.name, w->slot,
				     (int)w->pid, config_signal_name(sig));
				sent++;
			}
		}
	}
	free(t);
	log_info("control: signal %s %s uid=%d workers=%d", argv[0], config_signal_name(sig),
		 (int)c->uid, sent);
	if (sent)
		finish(c, CTL_OK, "sent SIG%s to %d worker%s", config_signal_name(sig), sent,
		       sent == 1 ? "" : "s");
	else
		finish(c, CTL_FAILED, "no worker process for %s", argv[0]);
}

static void cmd_drain(struct client *c, char **argv)
{
	struct target *t;
	int n, drained = 0;

	if ((n = resolve(c, argv[0], &t)) < 0)
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
	log_info("control: drain %s uid=%d workers=%d", argv[0], (int)c->uid, drained);
	finish(c, CTL_OK, "draining %d worker%s; they stay down until started", drained,
	       drained == 1 ? "" : "s");
}

/* start, stop, restart: an op over the target's slots. */
static void cmd_slots(struct client *c, enum op_kind kind, const char *name)
{
	struct target *t;
	int n;

	if ((n = resolve(c, name, &t)) < 0)
		return;
	for (int i = 0; i < n && kind != OP_STOP; i++) {
		struct op *busy = busy_with(t[i].prog);
		if (busy) {
			finish(c, CTL_FAILED, "%s is busy: %s is in progress", t[i].prog->cfg.name,
			       busy->what);
			free(t);
			return;
		}
	}
	struct op *op = op_new(c, kind, name);
	if (!op || op_add_targets(op, t, n) < 0) {
		free(t);
		if (op)
			op_free(op);
		finish(c, CTL_FAILED, "out of memory");
		return;
	}
	free(t);
	log_info("control: %s uid=%d slots=%d", op->what, (int)c->uid, op->n);
	for (int i = 0; i < op->n; i++) {
		struct slot *s = op_slot(&op->s[i]);
		if (kind == OP_START && pool_slot_start(s))
			putf(c, '>', "%s:%d starting", op->s[i].prog->cfg.name, op->s[i].slot);
		else if (kind == OP_STOP) {
			if (pool_slot_live(s) || slot_has_workers(s))
				putf(c, '>', "%s:%d draining", op->s[i].prog->cfg.name, op->s[i].slot);
			pool_slot_hold(s);
		}
	}
	control_pool_changed();
}

/* Scale p to n workers as an operation; 0, or -1 with err. */
static int scale_start(struct client *c, struct op *parent, struct program *p, int n,
		       char *err, size_t errlen)
{
	struct op *busy = busy_with(p);
	if (busy && busy->kind == OP_SCALE) {
		/* A new target replaces the old one (say, to undo a scale-down
		 * that waits for draining workers): the old request fails. */
		char why[128];
		snprintf(why, sizeof(why), "superseded by scale %s %d", p->cfg.name, n);
		op_end(busy, CTL_FAILED, why);
		busy = busy_with(p);
	}
	if (busy) {
		snprintf(err, errlen, "%s is busy: %s is in progress", p->cfg.name, busy->what);
		return -1;
	}
	int before = pool_nslots_active(p);
	struct op *op = op_new_for(c, parent, OP_SCALE, p->cfg.name);
	if (!op) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	op->prog = p;
	op->target = n;
	if (pool_scale(p, n) < 0) {
		op_end(op, CTL_FAILED, "out of memory");
		return 0;
	}
	int hi = p->nslots > n ? p->nslots : n;
	for (int i = 0; i < hi; i++)
		if ((i >= before || i >= n) && op_add(op, p, i) < 0) {
			op_end(op, CTL_FAILED, "out of memory");
			return 0;
		}
	log_info("control: scale %s from %d to %d uid=%d", p->cfg.name, before, n,
		 c ? (int)c->uid : -1);
	putf(op_client(op), '>', "%s: %d -> %d workers", p->cfg.name, before, n);
	control_pool_changed();
	return 0;
}

static void cmd_scale(struct client *c, char **argv)
{
	struct program *p;
	char *end, err[256];
	long n;

	if (strchr(argv[0], ':') || strcmp(argv[0], "all") == 0) {
		finish(c, CTL_USAGE, "scale takes a program name, not '%s'", argv[0]);
		return;
	}
	if (!(p = pool_find(argv[0]))) {
		finish(c, CTL_USAGE, "no such program '%s'", argv[0]);
		return;
	}
	errno = 0;
	n = strtol(argv[1], &end, 10);
	if (errno || *end || !argv[1][0] || argv[1][0] == '+' || n < 0 || n > 1024) {
		finish(c, CTL_USAGE, "scale: want a number of workers 0..1024, got '%s'", argv[1]);
		return;
	}
	if (scale_start(c, NULL, p, (int)n, err, sizeof(err)) < 0)
		finish(c, CTL_FAILED, "%s", err);
}

static void cmd_help(struct client *c, int argc, char **argv)
{
	char line[256];
	if (argc == 1) {
		const struct ctl_command *cmd = ctl_find(argv[0]);
		if (!cmd) {
			finish(c, CTL_USAGE, "no such command '%s'", argv[0]);
			return;
		}
		putf(c, '|', "usage: batonctl %s", cmd->usage);
		putf(c, '|', "%s", cmd->help);
		finish(c, CTL_OK, "%s", "");
		return;
	}
	for (const struct ctl_command *cmd = ctl_commands; cmd->name; cmd++) {
		ctl_help_line(cmd, line, sizeof(line));
		putf(c, '|', "%s", line);
	}
	putf(c, '|', "%s", CTL_NAME_HELP);
	finish(c, CTL_OK, "%s", "");
}

static void run_request(struct client *c, struct ctl_request *req)
{
	const struct ctl_command *cmd = ctl_find(req->argv[0]);
	char err[256];
	int nargs = req->argc - 1;
	char **args = req->argv + 1;

	c->json = req->json;
	ctl.requests++;
	if (!cmd) {
		finish(c, CTL_USAGE, "unknown command '%s' (try help)", req->argv[0]);
		return;
	}
	if (ctl_check_args(cmd, nargs, err, sizeof(err)) < 0) {
		finish(c, CTL_USAGE, "%s", err);
		return;
	}
	if (!cmd->read_only && c->access != ACCESS_FULL) {
		log_warn("control: refused '%s' to read-only client uid=%d pid=%d", cmd->name,
			 (int)c->uid, (int)c->pid);
		finish(c, CTL_DENIED, "permission denied: '%s' needs more than read-only access",
		       cmd->name);
		return;
	}
	if (batond.shutting_down && !cmd->read_only) {
		finish(c, CTL_FAILED, "batond is shutting down");
		return;
	}
	if (strcmp(cmd->name, "status") == 0)
		cmd_status(c, nargs, args);
	else if (strcmp(cmd->name, "metrics") == 0)
		cmd_metrics(c);
	else if (strcmp(cmd->name, "version") == 0) {
		if (c->json)
			putf(c, '|', "{\"version\":\"%s\",\"control\":\"%s\",\"worker_protocol\":%d}",
			     BATON_VERSION, CTL_VERSION, PROTO_VERSION);
		else
			putf(c, '|', "batond %s (control %s, worker protocol %d)", BATON_VERSION,
			     CTL_VERSION, PROTO_VERSION);
		finish(c, CTL_OK, "%s", "");
	} else if (strcmp(cmd->name, "pid") == 0)
		cmd_pid(c, nargs, args);
	else if (strcmp(cmd->name, "help") == 0)
		cmd_help(c, nargs, args);
	else if (strcmp(cmd->name, "start") == 0)
		cmd_slots(c, OP_START, args[0]);
	else if (strcmp(cmd->name, "stop") == 0)
		cmd_slots(c, OP_STOP, args[0]);
	else if (strcmp(cmd->name, "restart") == 0)
		cmd_slots(c, OP_RESTART, args[0]);
	else if (strcmp(cmd->name, "scale") == 0)
		cmd_scale(c, args);
	else if (strcmp(cmd->name, "upgrade") == 0)
		cmd_upgrade(c, nargs, args);
	else if (strcmp(cmd->name, "reload") == 0)
		cmd_reload(c, nargs, args);
	else if (strcmp(cmd->name, "drain") == 0)
		cmd_drain(c, args);
	else if (strcmp(cmd->name, "signal") == 0)
		cmd_signal(c, args);
	else if (strcmp(cmd->name, "shutdown") == 0) {
		log_info("control: shutdown uid=%d pid=%d", (int)c->uid, (int)c->pid);
		finish(c, CTL_OK, "shutting down: draining workers");
		batond_shutdown("control");
	} else { /* a command in ctl_commands without a case here: a bug */
		log_error("control: no handler for command '%s'", cmd->name);
		finish(c, CTL_FAILED, "internal error: batond has no handler for '%s'", cmd->name);
	}
}

/* ---- connections ---- */

static void on_read(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, NULL);
	struct ctl_request req;
	char line[CTL_LINE_MAX], err[256];

	if (c->answered || c->op)
		return; /* one request per connection: the rest is ignored */
	if (eol.pos < 0) {
		if (evbuffer_get_length(in) >= CTL_LINE_MAX) {
			ctl.bad_requests++;
			finish(c, CTL_USAGE, "request longer than %d bytes", CTL_LINE_MAX);
		}
		return;
	}
	size_t len = (size_t)eol.pos + 1;
	if (len > CTL_LINE_MAX) {
		ctl.bad_requests++;
		finish(c, CTL_USAGE, "request longer than %d bytes", CTL_LINE_MAX);
		return;
	}
	evbuffer_remove(in, line, len);
	bufferevent_disable(bev, EV_READ);
	if (ctl_parse_request(line, len, &req, err, sizeof(err)) < 0) {
		ctl.bad_requests++;
		log_debug("control: bad request uid=%d pid=%d error=\"%s\"", (int)c->uid,
			  (int)c->pid, err);
		finish(c, CTL_USAGE, "bad request: %s", err);
		return;
	}
	run_request(c, &req);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	(void)bev;
	if (c->answered)
		client_free(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;
	(void)bev;
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && !c->answered && !c->op) {
		/* Silent or half a request: tell it, then let it go. */
		ctl.bad_requests++;
		finish(c, CTL_USAGE, "no complete request within %d s",
		       CONTROL_REQUEST_TIMEOUT_MS / 1000);
		bufferevent_set_timeouts(c->bev, NULL, &(struct timeval){1, 0});
		return;
	}
	if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && !c->answered && !c->op &&
	    evbuffer_get_length(bufferevent_get_input(bev)) == 0) {
		client_free(c); /* left without asking anything */
		return;
	}
	if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && !c->answered) {
		/* A half-closed client may still read the answer. */
		bufferevent_disable(bev, EV_READ);
		if (!c->op)
			finish(c, CTL_USAGE, "request not terminated by a newline");
		return;
	}
	client_free(c); /* error, write timeout, or gone */
}

static enum access peer_access(uid_t uid, gid_t gid)
{
	if (uid == 0 || uid == geteuid())
		return ACCESS_FULL;
	if (!ctl.have_group)
		return ACCESS_NONE;
	int member = gid == ctl.group;
	if (!member) {
		struct passwd *pw = getpwuid(uid);
		gid_t groups[256];
		int ng = 256;
		if (pw && getgrouplist(pw->pw_name, pw->pw_gid, groups, &ng) >= 0)
			for (int i = 0; i < ng && !member; i++)
				member = groups[i] == ctl.group;
	}
	if (!member)
		return ACCESS_NONE;
	return ctl.group_write ? ACCESS_FULL : ACCESS_READ;
}

static void refuse(int fd, const char *line)
{
	ssize_t r = send(fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)r;
	close(fd);
}

#define CONTROL_RETRY_MS 100

static void accept_again(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (ctl.ev)
		event_add(ctl.ev, NULL);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	for (int i = 0; i < 16; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* The client waits in the backlog; polling now would
				 * spin.  Try again on a timer, as the listeners do. */
				struct timeval tv = {0, CONTROL_RETRY_MS * 1000};
				if (ctl.accept_retries++ == 0)
					log_warn("control: accept: %s; retrying every %d ms",
						 strerror(errno), CONTROL_RETRY_MS);
				event_del(ctl.ev);
				evtimer_add(ctl.ev_retry, &tv);
			} else if (errno != EAGAIN && errno != EINTR) {
				log_warn("control: accept: %s", strerror(errno));
			}
			return;
		}
		if (ctl.accept_retries) {
			log_info("control: accepting again after %llu retries",
				 (unsigned long long)ctl.accept_retries);
			ctl.accept_retries = 0;
		}
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			close(cfd);
			continue;
		}
		enum access access = peer_access(cred.uid, cred.gid);
		if (access == ACCESS_NONE) {
			ctl.refused_denied++;
			log_warn("control: permission denied uid=%d gid=%d pid=%d", (int)cred.uid,
				 (int)cred.gid, (int)cred.pid);
			refuse(cfd, "= 4 permission denied: this uid may not use batond's control socket\n");
			continue;
		}
		if (ctl.nclients >= CONTROL_CLIENTS_MAX) {
			ctl.refused_busy++;
			log_warn("control: too many clients, refused uid=%d pid=%d max=%d",
				 (int)cred.uid, (int)cred.pid, CONTROL_CLIENTS_MAX);
			refuse(cfd, "= 1 batond is busy: too many control clients, try again\n");
			continue;
		}
		struct client *c = calloc(1, sizeof(*c));
		if (c)
			c->bev = bufferevent_socket_new(batond.base, cfd, BEV_OPT_CLOSE_ON_FREE);
		if (!c || !c->bev) {
			free(c);
			close(cfd);
			continue;
		}
		c->uid = cred.uid;
		c->pid = cred.pid;
		c->access = access;
		LIST_INSERT_HEAD(&ctl.clients, c, link);
		ctl.nclients++;
		struct timeval rt = {CONTROL_REQUEST_TIMEOUT_MS / 1000, 0};
		struct timeval wt = {CONTROL_WRITE_TIMEOUT_MS / 1000, 0};
		bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
		bufferevent_set_timeouts(c->bev, &rt, &wt);
		bufferevent_setwatermark(c->bev, EV_READ, 0, CTL_LINE_MAX + 1);
		bufferevent_enable(c->bev, EV_READ);
	}
}

int control_open(const struct cfg_baton *cfg, char *err, size_t errlen)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct stat st;

	LIST_INIT(&ctl.clients);
	LIST_INIT(&ctl.ops);
	if (strlen(cfg->control) >= sizeof(un.sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", cfg->control);
		return -1;
	}
	if (cfg->control_group[0]) {
		struct group *gr = getgrnam(cfg->control_group);
		if (!gr) {
			snprintf(err, errlen, "control_group: no such group '%s'", cfg->control_group);
			return -1;
		}
		ctl.group = gr->gr_gid;
		ctl.have_group = 1;
		ctl.group_write = cfg->control_group_write;
	}
	strcpy(un.sun_path, cfg->control);
	/* Like systemd's RuntimeDirectory=: create the directory if it is the
	 * only thing missing (/run/baton on a fresh boot). */
	char dir[sizeof(un.sun_path)];
	strcpy(dir, un.sun_path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (mkdir(dir, 0755) == 0)
			log_info("created directory for the control socket path=%s", dir);
		else if (errno != EEXIST) {
			snprintf(err, errlen, "control socket directory %s: %s", dir, strerror(errno));
			return -1;
		}
	}
	if (listener_unix_reclaim(un.sun_path, "control", err, errlen) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* Create the file with no access, then open it up as configured. */
	mode_t old = umask(0777);
	int rc = bind(fd, (struct sockaddr *)&un, sizeof(un));
	umask(old);
	if (rc < 0) {
		snprintf(err, errlen, "bind %s: %s", un.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	ctl.fd = fd;
	ctl.mode = cfg->control_mode;
	snprintf(ctl.path, sizeof(ctl.path), "%s", un.sun_path);
	if (stat(un.sun_path, &st) == 0) {
		ctl.dev = st.st_dev;
		ctl.ino = st.st_ino;
	}
	if (chmod(un.sun_path, cfg->control_mode) < 0 ||
	    (ctl.have_group && chown(un.sun_path, (uid_t)-1, ctl.group) < 0) ||
	    listen(fd, 64) < 0) {
		snprintf(err, errlen, "control socket %s: %s", un.sun_path, strerror(errno));
		control_close();
		return -1;
	}
	ctl.ev = event_new(batond.base, fd, EV_READ | EV_PERSIST, on_accept, NULL);
	ctl.ev_retry = evtimer_new(batond.base, accept_again, NULL);
	if (!ctl.ev || !ctl.ev_retry || event_add(ctl.ev, NULL) < 0)
		fatal("out of memory");
	log_info("control socket path=%s mode=%04o%s%s", un.sun_path, cfg->control_mode,
		 ctl.have_group ? " group=" : "", ctl.have_group ? cfg->control_group : "");
	return 0;
}

int control_check_reconfigure(const struct cfg_baton *cfg, char *err, size_t errlen)
{
	if (ctl.fd >= 0 && strcmp(cfg->control, ctl.path) != 0) {
		snprintf(err, errlen,
			 "control: moving the control socket (%s to %s) needs a restart of batond; nothing changed",
			 ctl.path, cfg->control);
		return -1;
	}
	return 0;
}

void control_reconfigure(const struct cfg_baton *cfg)
{
	struct group *gr = cfg->control_group[0] ? getgrnam(cfg->control_group) : NULL;

	ctl.have_group = gr != NULL;
	ctl.group = gr ? gr->gr_gid : 0;
	ctl.group_write = cfg->control_group_write;
	if (ctl.mode != cfg->control_mode && chmod(ctl.path, cfg->control_mode) == 0)
		log_info("control socket mode=%04o path=%s", cfg->control_mode, ctl.path);
	ctl.mode = cfg->control_mode;
	if (gr && chown(ctl.path, (uid_t)-1, gr->gr_gid) < 0)
		log_warn("control socket: chown %s: %s", ctl.path, strerror(errno));
}

void control_shutdown(void)
{
	struct op *op;
	while ((op = LIST_FIRST(&ctl.ops)))
		op_end(op, CTL_FAILED, "batond is shutting down");
}

void control_close(void)
{
	struct client *c;

	control_shutdown();
	while ((c = LIST_FIRST(&ctl.clients))) {
		/* Answered clients get what is buffered, best effort. */
		struct evbuffer *out = bufferevent_get_output(c->bev);
		char buf[4096];
		evbuffer_unfreeze(out, 1); /* bufferevent keeps its start frozen */
		ev_ssize_t n = evbuffer_copyout(out, buf, sizeof(buf));
		if (n > 0 && send(bufferevent_getfd(c->bev), buf, (size_t)n,
				  MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			log_debug("control: last answer lost: %s", strerror(errno));
		client_free(c);
	}
	if (ctl.ev)
		event_free(ctl.ev);
	ctl.ev = NULL;
	if (ctl.ev_retry)
		event_free(ctl.ev_retry);
	ctl.ev_retry = NULL;
	if (ctl.fd >= 0) {
		close(ctl.fd);
		ctl.fd = -1;
		listener_unix_unlink(ctl.path, ctl.dev, ctl.ino);
	}
}

void control_metrics(struct evbuffer *out)
{
	evbuffer_add_printf(out,
			    "# HELP baton_control_clients Control socket clients connected now.\n"
			    "# TYPE baton_control_clients gauge\n"
			    "baton_control_clients %d\n"
			    "# HELP baton_control_requests_total Control requests parsed.\n"
			    "# TYPE baton_control_requests_total counter\n"
			    "baton_control_requests_total %llu\n"
			    "# HELP baton_control_refused_total Control clients refused or cut off.\n"
			    "# TYPE baton_control_refused_total counter\n"
			    "baton_control_refused_total{reason=\"busy\"} %llu\n"
			    "baton_control_refused_total{reason=\"denied\"} %llu\n"
			    "baton_control_refused_total{reason=\"bad_request\"} %llu\n",
			    ctl.nclients, (unsigned long long)ctl.requests,
			    (unsigned long long)ctl.refused_busy,
			    (unsigned long long)ctl.refused_denied,
			    (unsigned long long)ctl.bad_requests);
}
