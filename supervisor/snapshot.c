/* The whole of batond across a reexec: see snapshot.h and STATE.md. */
#include "snapshot.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batond.h"
#include "config.h"
#include "config_keys.h"
#include "control.h"
#include "cpusched.h"
#include "dispatch.h"
#include "httpd.h"
#include "listener.h"
#include "log.h"
#include "pool.h"
#include "pool_state.h"
#include "state.h"
#include "util.h"
#include "version.h"

static const char *const stat_names[] = {"requests", "refused_busy", "refused_denied",
					 "bad_requests"};

static uint64_t *stat_of(int i)
{
	uint64_t *const s[] = {&batond.control.requests, &batond.control.refused_busy,
			       &batond.control.refused_denied, &batond.control.bad_requests};
	return s[i];
}

void snapshot_save(struct state_out *o, const struct reply *requester, int final)
{
	struct listener *l;

	state_record(o, "batond", 1);
	state_str(o, "version", BATON_VERSION);
	state_str(o, "config_path", batond.config_path);
	for (int i = 0; i < 4; i++)
		state_u64(o, stat_names[i], *stat_of(i));
	if (cpusched_base() >= 0) /* absent: not known (an older image wrote -1 as 2^64-1) */
		state_u64(o, "sched_base", (uint64_t)cpusched_base());
	state_record(o, "baton", 1);
	config_save_section(o, S_BATON, &batond.baton);
	state_record(o, "log", 1);
	state_str(o, "path", log_file_path());
	state_fd(o, "fd", log_file_fd());
	state_str(o, "level", log_level_name(log_get_level()));
	TAILQ_FOREACH(l, &batond.listeners, link)
		listener_save(l, o);
	pool_state_save(o);
	httpd_save(o);
	control_save(o, requester, final);
}

/* Record types this build reads, and whether the new image needs one. */
static const struct {
	const char *type;
	int needed;
} known[] = {
	{"batond", 1}, {"baton", 1},  {"log", 1},  {"listener", 0},       {"engine", 1},
	{"program", 0}, {"slot", 0},  {"worker", 0}, {"conn", 0},         {"http", 0},
	{"control", 1}, {"control_client", 0}, {"reexec", 1},
};
#define NKNOWN (sizeof(known) / sizeof(known[0]))

static int known_type(const char *type)
{
	for (size_t i = 0; i < NKNOWN; i++)
		if (strcmp(known[i].type, type) == 0)
			return (int)i;
	return -1;
}

/* The batond record: the control counters into batond, the scheduling
 * policy batond was started with in *sched (-1: absent). */
static int parse_batond(const struct state_rec *r, uint64_t *stats, int *sched, char *err,
			size_t errlen)
{
	uint64_t base = UINT64_MAX; /* absent: an image that never changed it */
	for (int i = 0; i < 4; i++)
		if (state_opt_u64(r, stat_names[i], &stats[i], err, errlen) < 0)
			return -1;
	if (state_opt_u64(r, "sched_base", &base, err, errlen) < 0)
		return -1;
	if (base != UINT64_MAX && base > INT_MAX) {
		snprintf(err, errlen, "batond: bad sched_base %llu", (unsigned long long)base);
		return -1;
	}
	*sched = base == UINT64_MAX ? -1 : (int)base;
	return 0;
}

/* The log record: the file's path ("" for stderr) and fd, and the level. */
static int parse_log(const struct state_rec *r, char *path, size_t pathlen, int *fd,
		     enum log_level *lvl, char *err, size_t errlen)
{
	char level[16];
	long long v;
	if (state_get_str(r, "path", path, pathlen, err, errlen) < 0 ||
	    state_get_int(r, "fd", -1, INT_MAX, &v, err, errlen) < 0 ||
	    state_get_str(r, "level", level, sizeof(level), err, errlen) < 0)
		return -1;
	if (log_parse_level(level, lvl)) {
		snprintf(err, errlen, "log: bad level '%s'", level);
		return -1;
	}
	*fd = (int)v;
	return 0;
}

int snapshot_check(const struct state *st, char *err, size_t errlen)
{
	int seen[NKNOWN] = {0};
	for (int i = 0; i < st->nrec; i++) {
		const struct state_rec *r = &st->rec[i];
		int k = known_type(r->type);
		if (k < 0 && r->required) {
			snprintf(err, errlen, "state record '%s' is required and this batond "
				 "does not know it", r->type);
			return -1;
		}
		if (k < 0)
			continue;
		seen[k]++;
		int rc = 0;
		if (strcmp(r->type, "batond") == 0) {
			uint64_t stats[4];
			int sched;
			rc = parse_batond(r, stats, &sched, err, errlen);
		} else if (strcmp(r->type, "log") == 0) {
			char path[PATH_MAX];
			enum log_level lvl;
			int fd;
			rc = parse_log(r, path, sizeof(path), &fd, &lvl, err, errlen);
		} else if (strcmp(r->type, "baton") == 0) {
			struct cfg_baton b;
			memset(&b, 0, sizeof(b));
			rc = config_restore_section(r, S_BATON, &b, err, errlen);
		} else if (strcmp(r->type, "listener") == 0) {
			rc = listener_check_rec(r, err, errlen);
		} else if (strcmp(r->type, "control") == 0) {
			rc = control_check_rec(r, err, errlen);
		} else if (strcmp(r->type, "program") == 0) {
			struct cfg_program pc;
			memset(&pc, 0, sizeof(pc));
			rc = config_restore_section(r, S_PROGRAM, &pc, err, errlen);
			config_free_strv(pc.argv);
			config_free_strv(pc.env);
		}
		if (rc < 0)
			return -1;
	}
	for (size_t k = 0; k < NKNOWN; k++)
		if (known[k].needed && seen[k] != 1) {
			snprintf(err, errlen, "state: %d '%s' records, want 1", seen[k], known[k].type);
			return -1;
		}
	return 0;
}

static int restore_batond(const struct state_rec *r, char *err, size_t errlen)
{
	uint64_t stats[4] = {0};
	int sched;
	if (parse_batond(r, stats, &sched, err, errlen) < 0)
		return -1;
	for (int i = 0; i < 4; i++)
		if (state_get(r, stat_names[i]))
			*stat_of(i) = stats[i];
	cpusched_init(sched);
	return 0;
}

static int restore_log(const struct state_rec *r, char *err, size_t errlen)
{
	char path[PATH_MAX];
	enum log_level lvl;
	int fd;
	if (parse_log(r, path, sizeof(path), &fd, &lvl, err, errlen) < 0)
		return -1;
	if (!batond.log_level_fixed)
		log_set_level(lvl);
	if (path[0] && fd >= 0 && fcntl(fd, F_GETFL) >= 0) {
		log_adopt_file(path, fd);
	} else if (path[0]) {
		snprintf(err, errlen, "log: no fd for %s", path);
		return -1;
	}
	return 0;
}

static int restore_reexec(const struct state_rec *r, struct reexec_info *info, char *err,
			  size_t errlen)
{
	long long fd;
	if (state_get_str(r, "old_version", info->old_version, sizeof(info->old_version), err,
			  errlen) < 0 ||
	    state_get_str(r, "binary", info->binary, sizeof(info->binary), err, errlen) < 0 ||
	    state_get_u64(r, "commit_us", &info->commit_us, err, errlen) < 0 ||
	    state_opt_u64(r, "last_accept_us", &info->last_accept_us, err, errlen) < 0 ||
	    state_get_int(r, "old_exe", -1, INT_MAX, &fd, err, errlen) < 0)
		return -1;
	info->old_exe = (int)fd;
	return 0;
}

int snapshot_restore(const struct state *st, const struct reply **requester,
		     struct reexec_info *info, char *err, size_t errlen)
{
	char msg[512];
	*requester = NULL;
	info->old_exe = -1;
	if (snapshot_check(st, err, errlen) < 0)
		return -1;
	for (int i = 0; i < st->nrec; i++) {
		const struct state_rec *r = &st->rec[i];
		int rc = 0;
		if (strcmp(r->type, "batond") == 0) {
			rc = restore_batond(r, err, errlen);
		} else if (strcmp(r->type, "baton") == 0) {
			rc = config_restore_section(r, S_BATON, &batond.baton, err, errlen);
		} else if (strcmp(r->type, "log") == 0) {
			rc = restore_log(r, err, errlen);
		} else if (strcmp(r->type, "listener") == 0) {
			struct listener *l = listener_adopt(r, msg, sizeof(msg));
			if (!l) {
				snprintf(err, errlen, "listener: %s", msg);
				return -1;
			}
			TAILQ_INSERT_TAIL(&batond.listeners, l, link);
		} else if (strcmp(r->type, "http") == 0) {
			rc = httpd_adopt(&batond.baton, r, err, errlen);
		} else if (strcmp(r->type, "control") == 0) {
			rc = control_adopt(&batond.baton, r, err, errlen);
		} else if (strcmp(r->type, "control_client") == 0) {
			if (!(*requester = control_adopt_client(r, err, errlen)))
				return -1;
		} else if (strcmp(r->type, "reexec") == 0) {
			rc = restore_reexec(r, info, err, errlen);
		} else {
			rc = pool_state_restore(r, err, errlen);
			rc = rc < 0 ? -1 : 0; /* 0: a record this build skips (optional) */
		}
		if (rc < 0)
			return -1;
	}
	struct listener *l;
	TAILQ_FOREACH(l, &batond.listeners, link) {
		struct program *p = pool_find(l->cfg.program);
		if (!p) {
			snprintf(err, errlen, "listener %s: no program %s", l->cfg.name, l->cfg.program);
			return -1;
		}
		dispatch_link_listener(l, p);
	}
	return 0;
}

void snapshot_start(void)
{
	struct program *p;
	pool_state_start();
	TAILQ_FOREACH(p, &batond.programs, link)
		dispatch_kick(p); /* sends the outboxes, polls the listeners */
}
