#include "reload.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batond.h"
#include "config.h"
#include "config_keys.h"
#include "cpusched.h"
#include "dispatch.h"
#include "listener.h"
#include "log.h"
#include "pool.h"

struct reload_hooks reload_hooks;

enum change { KEEP, ADD, REMOVE, UPDATE, REPLACE, SCALE, UPGRADE, SCALE_UPGRADE };

struct lchange {
	enum change what;
	struct listener *cur;   /* running (NULL for ADD) */
	struct cfg_listener *cfg; /* in plan->cfg (NULL for REMOVE) */
	struct listener *fresh; /* opened by reload_apply (ADD, REPLACE) */
};

struct pchange {
	enum change what;
	struct program *cur;
	struct cfg_program *cfg;
};

struct reload_plan {
	struct config cfg;
	struct lchange *l;
	int nl;
	struct pchange *p;
	int np;
	int log_level_changed;
};

static struct listener *find_listener(const char *name)
{
	struct listener *l;
	TAILQ_FOREACH(l, &batond.listeners, link)
		if (strcmp(l->cfg.name, name) == 0)
			return l;
	return NULL;
}

void reload_free(struct reload_plan *plan)
{
	if (!plan)
		return;
	for (int i = 0; i < plan->nl; i++)
		if (plan->l[i].fresh) {
			listener_free(plan->l[i].fresh);
		}
	config_free(&plan->cfg);
	free(plan->l);
	free(plan->p);
	free(plan);
}

struct reload_plan *reload_prepare(const char *path, char *err, size_t errlen)
{
	struct reload_plan *plan = calloc(1, sizeof(*plan));
	struct listener *l;
	struct program *p;
	int n;

	if (!plan) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((n = config_load(path, &plan->cfg, err, errlen))) {
		size_t len = strlen(err);
		snprintf(err + len, errlen - len, "%s: %d error%s, nothing changed", path, n,
			 n == 1 ? "" : "s");
		free(plan);
		return NULL;
	}
	if (config_check_restart(&batond.baton, &plan->cfg.baton, err, errlen) < 0)
		goto fail;
	plan->log_level_changed = !batond.log_level_fixed &&
				  plan->cfg.baton.log_level != log_get_level();

	int nlisteners = 0;
	TAILQ_FOREACH(l, &batond.listeners, link)
		nlisteners++;
	plan->l = calloc(plan->cfg.nlisteners + nlisteners + 1, sizeof(*plan->l));
	int nprograms = 0;
	TAILQ_FOREACH(p, &batond.programs, link)
		nprograms++;
	plan->p = calloc(plan->cfg.nprograms + nprograms + 1, sizeof(*plan->p));
	if (!plan->l || !plan->p) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < plan->cfg.nlisteners; i++) {
		struct cfg_listener *c = &plan->cfg.listeners[i];
		struct lchange *lc = &plan->l[plan->nl++];
		lc->cfg = c;
		lc->cur = find_listener(c->name);
		unsigned d = lc->cur ? config_diff_listener(&lc->cur->cfg, c) : 0;
		if (!lc->cur)
			lc->what = ADD;
		else if (d & CONFIG_DIFF_ADDRESS)
			lc->what = REPLACE;
		else
			lc->what = d ? UPDATE : KEEP;
	}
	TAILQ_FOREACH(l, &batond.listeners, link) {
		int kept = 0;
		for (int i = 0; i < plan->cfg.nlisteners; i++)
			kept |= strcmp(plan->cfg.listeners[i].name, l->cfg.name) == 0;
		if (!kept)
			plan->l[plan->nl++] = (struct lchange){.what = REMOVE, .cur = l};
	}
	for (int i = 0; i < plan->cfg.nprograms; i++) {
		struct cfg_program *c = &plan->cfg.programs[i];
		struct pchange *pc = &plan->p[plan->np++];
		pc->cfg = c;
		pc->cur = pool_find(c->name);
		if (!pc->cur) {
			pc->what = ADD;
			continue;
		}
		int scale = pool_nslots_active(pc->cur) != c->workers;
		int upgrade = (config_diff_program(&pc->cur->cfg, c) & CONFIG_DIFF_SETTINGS) != 0;
		pc->what = scale && upgrade ? SCALE_UPGRADE : scale ? SCALE : upgrade ? UPGRADE : KEEP;
	}
	TAILQ_FOREACH(p, &batond.programs, link) {
		if (p->retired)
			continue;
		if (!config_program(&plan->cfg, p->cfg.name))
			plan->p[plan->np++] = (struct pchange){.what = REMOVE, .cur = p};
	}
	return plan;
fail:
	reload_free(plan);
	return NULL;
}

int reload_describe(const struct reload_plan *plan, struct evbuffer *out)
{
	static const char *const verbs[] = {
		[ADD] = "open", [REMOVE] = "close", [UPDATE] = "update", [REPLACE] = "move",
	};
	int n = 0;

	for (int i = 0; i < plan->nl; i++) {
		const struct lchange *lc = &plan->l[i];
		if (lc->what == KEEP)
			continue;
		const char *name = lc->cfg ? lc->cfg->name : lc->cur->cfg.name;
		evbuffer_add_printf(out, "listener %s: %s", name, verbs[lc->what]);
		if (lc->what == ADD)
			evbuffer_add_printf(out, " %s -> program %s", lc->cfg->address, lc->cfg->program);
		else if (lc->what == REPLACE)
			evbuffer_add_printf(out, " %s to %s", lc->cur->cfg.address, lc->cfg->address);
		else if (lc->what == UPDATE)
			evbuffer_add_printf(out, " settings of %s", lc->cfg->address);
		evbuffer_add(out, "\n", 1);
		n++;
	}
	for (int i = 0; i < plan->np; i++) {
		const struct pchange *pc = &plan->p[i];
		const char *name = pc->cfg ? pc->cfg->name : pc->cur->cfg.name;
		switch (pc->what) {
		case KEEP:
			continue;
		case ADD:
			evbuffer_add_printf(out, "program %s: start %lld worker%s of %s\n", name,
					    pc->cfg->workers, pc->cfg->workers == 1 ? "" : "s",
					    pc->cfg->command);
			break;
		case REMOVE:
			evbuffer_add_printf(out, "program %s: drain and stop its %d worker%s\n", name,
					    pool_nworkers(pc->cur), pool_nworkers(pc->cur) == 1 ? "" : "s");
			break;
		case SCALE:
			evbuffer_add_printf(out, "program %s: scale %d -> %lld workers\n", name,
					    pool_nslots_active(pc->cur), pc->cfg->workers);
			break;
		case UPGRADE:
			evbuffer_add_printf(out, "program %s: upgrade to generation %d (settings changed)\n",
					    name, pc->cur->generation + 1);
			break;
		case SCALE_UPGRADE:
			evbuffer_add_printf(out, "program %s: scale %d -> %lld workers, then upgrade to generation %d\n",
					    name, pool_nslots_active(pc->cur), pc->cfg->workers,
					    pc->cur->generation + 1);
			break;
		default:
			break;
		}
		n++;
	}
	if (plan->log_level_changed) {
		evbuffer_add_printf(out, "log_level: %s -> %s\n", log_level_name(log_get_level()),
				    log_level_name(plan->cfg.baton.log_level));
		n++;
	}
	if (plan->cfg.baton.batch_scheduling != batond.baton.batch_scheduling) {
		evbuffer_add_printf(out, "batch_scheduling: %s -> %s\n",
				    batond.baton.batch_scheduling ? "yes" : "no",
				    plan->cfg.baton.batch_scheduling ? "yes" : "no");
		n++;
	}
	if (!n)
		evbuffer_add_printf(out, "nothing to change\n");
	return n;
}

static void close_listener(struct listener *l)
{
	log_info("closing listener listener=%s address=%s accepted=%llu", l->cfg.name,
		 l->cfg.address, (unsigned long long)l->accepted);
	dispatch_link_listener(l, NULL);
	TAILQ_REMOVE(&batond.listeners, l, link);
	listener_free(l);
}

int reload_apply(struct reload_plan *plan,
		 void (*upgrade)(struct program *p, void *arg),
		 void (*scale)(struct program *p, int workers, void *arg), void *arg,
		 char *err, size_t errlen)
{
	char why[512];

	/* 1. Open every new listener: the only step that can fail. */
	for (int i = 0; i < plan->nl; i++) {
		struct lchange *lc = &plan->l[i];
		if (lc->what != ADD && lc->what != REPLACE)
			continue;
		if (!(lc->fresh = listener_new(lc->cfg, why, sizeof(why)))) {
			snprintf(err, errlen, "listener %s: %s; nothing changed", lc->cfg->name, why);
			goto undo;
		}
	}

	/* 2. From here on nothing fails.  New programs first, so that new
	 * listeners have someone to feed. */
	if (plan->log_level_changed)
		log_set_level(plan->cfg.baton.log_level);
	if (plan->cfg.baton.batch_scheduling != batond.baton.batch_scheduling)
		cpusched_apply(plan->cfg.baton.batch_scheduling);
	batond.baton = plan->cfg.baton;
	if (reload_hooks.baton)
		reload_hooks.baton(&batond.baton);
	for (int i = 0; i < plan->np; i++) {
		struct pchange *pc = &plan->p[i];
		if (pc->what != ADD)
			continue;
		struct program *p = pool_program_new(pc->cfg);
		if (!p)
			fatal("out of memory");
		TAILQ_INSERT_TAIL(&batond.programs, p, link);
		pc->cur = p;
		log_info("adding program program=%s workers=%lld", p->cfg.name, p->cfg.workers);
		pool_start(p);
	}
	/* 3. Listeners: new ones start feeding, removed ones close (what they
	 * accepted is in their program's hands already). */
	for (int i = 0; i < plan->nl; i++) {
		struct lchange *lc = &plan->l[i];
		struct listener *l;
		switch (lc->what) {
		case KEEP:
			break;
		case ADD:
		case REPLACE:
			l = lc->fresh;
			lc->fresh = NULL;
			if (lc->what == REPLACE)
				close_listener(lc->cur);
			TAILQ_INSERT_TAIL(&batond.listeners, l, link);
			dispatch_link_listener(l, pool_find(l->cfg.program));
			dispatch_kick(l->prog);
			break;
		case UPDATE:
			l = lc->cur;
			log_info("updating listener listener=%s address=%s program=%s", l->cfg.name,
				 l->cfg.address, lc->cfg->program);
			listener_update(l, lc->cfg);
			dispatch_link_listener(l, pool_find(lc->cfg->program));
			dispatch_kick(l->prog);
			break;
		case REMOVE:
			close_listener(lc->cur);
			break;
		default:
			break;
		}
	}
	/* 4. Programs: removed ones drain away, changed ones scale/upgrade. */
	for (int i = 0; i < plan->np; i++) {
		struct pchange *pc = &plan->p[i];
		switch (pc->what) {
		case REMOVE:
			pool_program_retire(pc->cur);
			break;
		case SCALE:
			pc->cur->cfg.workers = pc->cfg->workers;
			scale(pc->cur, (int)pc->cfg->workers, arg);
			break;
		case SCALE_UPGRADE:
			/* The new slots start on the old generation and are
			 * replaced by the upgrade like the others. */
			pool_set_cfg(pc->cur, pc->cfg);
			if (pool_scale(pc->cur, (int)pc->cur->cfg.workers) < 0)
				fatal("out of memory");
			upgrade(pc->cur, arg);
			break;
		case UPGRADE:
			pool_set_cfg(pc->cur, pc->cfg);
			upgrade(pc->cur, arg);
			break;
		default:
			break;
		}
	}
	return 0;
undo:
	for (int i = 0; i < plan->nl; i++)
		if (plan->l[i].fresh) {
			listener_free(plan->l[i].fresh);
			plan->l[i].fresh = NULL;
		}
	return -1;
}
