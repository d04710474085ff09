/*
 * Programs and their worker processes: spawn with fork+exec and the
 * channel on fd 3, the ready handshake, restart with backoff, drain and
 * stop with escalating signals, and the channel's message handling.
 */
#ifndef BATON_POOL_H
#define BATON_POOL_H

#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "config.h"
#include "dispatch.h"

struct output;

enum worker_state {
	WS_STARTING, /* spawned, waiting for READY */
	WS_RUNNING,  /* takes connections */
	WS_DRAINING, /* told to drain: serves what it has, takes nothing new */
	WS_STOPPING, /* stop signal sent, SIGKILL after stop_timeout */
};
#define WS_COUNT (WS_STOPPING + 1)

enum slot_state {
	SLOT_UP,      /* has a live worker */
	SLOT_BACKOFF, /* waiting to restart */
	SLOT_FATAL,   /* too many failed starts */
	SLOT_EXITED,  /* exited and not restarted by policy */
	SLOT_STOPPED, /* stopped on purpose */
};
#define SLOT_COUNT (SLOT_STOPPED + 1)

enum upgrade_result { UPGRADE_OK, UPGRADE_FAILED, UPGRADE_ABORTED };
#define UPGRADE_COUNT (UPGRADE_ABORTED + 1)

struct worker {
	TAILQ_ENTRY(worker) link;
	struct program *prog;
	int slot;
	int generation;
	pid_t pid;
	int chan; /* our end of the SEQPACKET channel; -1 once closed */
	struct event *ev_read, *ev_write, *ev_timer;
	struct event *ev_retry; /* fd limit hit in sendmsg: retry on a timer */
	struct event *ev_ack;   /* the oldest unacknowledged connection's ACK deadline */
	enum worker_state state;
	int broken;   /* protocol error: killed, its messages ignored */
	int retiring; /* we drained or stopped it: do not restart the slot */
	int drain_pending; /* DRAIN not yet sent: the channel was full */
	int replacement;   /* started to replace a live worker of its slot */
	char why[80];      /* why we stopped or killed it, if we did */
	uint32_t capacity;
	uint32_t queued;   /* conns in outbox */
	uint32_t inflight; /* conns in unacked */
	uint32_t active;   /* acked and not done */
	struct conn_list outbox, unacked;
	uint64_t started_ms, ready_ms;
	uint64_t last_msg_ms; /* last message on the channel (heartbeat timeout) */
	struct output *out[2]; /* its stdout and stderr, when captured */
	int status_sent;      /* STATUS sent since that message */
	uint64_t handed, acked;
	uint64_t timer_due_ms; /* when ev_timer fires, if pending */
};

TAILQ_HEAD(worker_list, worker);

struct slot {
	struct program *prog;
	int index;
	enum slot_state state;
	int failures; /* failed starts in a row */
	int held;     /* stopped or drained by the operator: no restarts */
	int removing; /* scaled away: freed once its workers are gone */
	int generation; /* what a restart of this slot starts */
	char last_exit[96]; /* how its last worker ended, for reports */
	struct event *ev_backoff;
	uint64_t backoff_due_ms; /* when ev_backoff fires, if pending */
};

struct program {
	TAILQ_ENTRY(program) link;
	struct cfg_program cfg; /* owns cfg.argv and cfg.env */
	struct worker_list workers;
	struct slot **slots; /* pointers stay valid while the array grows */
	int nslots;
	int generation;
	struct conn_list queue;
	uint32_t nqueued;
	struct event *ev_queue;
	struct event *ev_resume; /* listener hysteresis (dispatch.c) */
	int starved;             /* listeners paused for want of credit */
	struct listener **listeners; /* listeners feeding this program */
	int nlisteners;
	uint64_t accepted, handed, acked, redispatched, dropped, lost, restarts;
	uint64_t lat_bucket[DISPATCH_LAT_BUCKETS + 1]; /* last: above every bound */
	uint64_t lat_count, lat_sum_us;
	uint64_t upgrades[UPGRADE_COUNT]; /* rolling upgrades by result */
	int retired; /* removed by a reload: freed with its last worker */
	/* The previous generation's config while an upgrade may roll back. */
	struct cfg_program *old_cfg;
	int old_cfg_generation;
};

/* Set by main: how the pool tells the floors above it that it changed. */
struct pool_hooks {
	/* A worker became ready or exited, or a start failed: operations
	 * waiting on the pool re-check, readiness is reported again. */
	void (*changed)(void);
	/* A child that is no worker exited: 1 if it was the hook's (reexec's
	 * preflight check), 0 to log it as unknown. */
	int (*reaped)(pid_t pid, int status);
};
extern struct pool_hooks pool_hooks;

/* Create a program from its config (takes argv/env); NULL on ENOMEM. */
struct program *pool_program_new(struct cfg_program *cfg);
void pool_program_free(struct program *p);
/* The config a worker of that generation runs with. */
const struct cfg_program *pool_cfg_for(const struct program *p, int generation);
/* Take cfg (its argv/env) as the config; the old one is kept for the
 * current generation until pool_forget_old_cfg() or pool_revert_cfg(). */
void pool_set_cfg(struct program *p, struct cfg_program *cfg);
void pool_revert_cfg(struct program *p);
void pool_forget_old_cfg(struct program *p);
/* Removed from the config: drain every worker, free it when none is left. */
void pool_program_retire(struct program *p);
void pool_program_reap(struct program *p);
void pool_log_totals(const struct program *p);
struct program *pool_find(const char *name);

/* Start every slot's worker. */
void pool_start(struct program *p);
/* Drain every worker (shutdown); STARTING ones are stopped. */
void pool_shutdown(struct program *p);
/* Send the stop signal to every worker now (second shutdown signal). */
void pool_stop_all(struct program *p);
int pool_nworkers(const struct program *p);

void pool_drain_worker(struct worker *w);
/* Send a pending DRAIN; on a full channel it waits for EV_WRITE. */
void pool_send_drain(struct worker *w);
void pool_stop_worker(struct worker *w);
/* A protocol error or broken channel: kill it, reclaim when reaped. */
void pool_fail_worker(struct worker *w, const char *why);

/* The worker sent READY announcing capacity (0: the program's). */
void pool_worker_ready(struct worker *w, uint32_t capacity);
/* The worker closed its end of the channel (it is exiting). */
void pool_channel_closed(struct worker *w);

/*
 * Rebuilding the pool after a reexec (pool_state.c): a slot; a worker of
 * a running process on channel chan (STARTING, not yet reading: add
 * ev_read); its timer due at a CLOCK_MONOTONIC ms; a backoff due at one.
 */
struct slot *pool_slot_new(struct program *p, int index);
struct worker *pool_worker_new(struct program *p, int slot, int generation, int chan);
void pool_worker_timer_at(struct worker *w, uint64_t due_ms);
void pool_slot_backoff_at(struct slot *s, uint64_t due_ms);

/* Reap exited children; called on SIGCHLD, never blocks. */
void pool_reap(void);

const char *pool_state_name(enum worker_state s);
const char *pool_slot_state_name(enum slot_state s);
/* "ok", "failed", "aborted" (metric labels). */
const char *pool_upgrade_result_name(enum upgrade_result r);

/*
 * Operator actions on one slot (the control socket drives these; they
 * return at once and the control module watches the outcome).
 */
/* Start a slot that has no worker (STOPPED, EXITED, FATAL, BACKOFF). */
int pool_slot_start(struct slot *s);
/* Drain its workers and keep the slot down until started again. */
void pool_slot_hold(struct slot *s);
/*
 * Start a second worker of the given generation that will replace the
 * live one once ready (the caller drains the old one then).  If it never
 * becomes ready it is not restarted: the old one carries on.
 */
struct worker *pool_slot_replace(struct slot *s, int generation);
/* Does any worker, live or leaving, still belong to the slot? */
int pool_slot_has_workers(const struct slot *s);
/* Workers of the slot that are not retiring (normally 0 or 1, 2 while one replaces another). */
int pool_slot_live(const struct slot *s);
/* The slot's newest live worker, or NULL. */
struct worker *pool_slot_worker(const struct slot *s);
struct worker *pool_find_pid(pid_t pid);
/* Grow to n slots (starting the new ones) or drain and remove slots >= n. */
int pool_scale(struct program *p, int n);
/* Slots that count: index < nslots and not being removed. */
int pool_nslots_active(const struct program *p);

#endif
