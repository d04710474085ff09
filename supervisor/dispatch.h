/*
 * Connection handoff: every accepted connection becomes a struct conn that
 * the supervisor owns (and keeps its fd) until a worker acknowledges it.
 * It waits in its program's queue, or in one worker's outbox (chosen, not
 * yet sent), or in that worker's unacked list (sent, not yet acked).
 */
#ifndef BATON_DISPATCH_H
#define BATON_DISPATCH_H

#include <stdint.h>
#include <sys/queue.h>

#include "proto.h"

struct listener;
struct program;
struct worker;

/* Handoff latency (accept to ACK) histogram bucket bounds, microseconds. */
#define DISPATCH_LAT_BUCKETS 14
extern const uint64_t dispatch_lat_bounds_us[DISPATCH_LAT_BUCKETS];

struct conn {
	TAILQ_ENTRY(conn) link;
	uint64_t id;
	int fd;
	uint64_t accepted_ms;
	uint64_t accepted_us; /* for the handoff latency histogram */
	uint64_t handed_ms;   /* sent to a worker: its ACK is due ack_timeout later */
	char listener[PROTO_LISTENER_MAX];
	char peer[PROTO_PEER_MAX];
};

TAILQ_HEAD(conn_list, conn);

/* A new connection owning fd; NULL (fd untouched) when out of memory. */
struct conn *dispatch_conn_new(int fd, const char *listener, const char *peer);
/*
 * When the last connection was accepted (CLOCK_MONOTONIC µs, 0: never), and
 * the old image's figure after a reexec: the new image's first accept logs
 * the gap between the two ("accept_gap_ms", to within one accept batch).
 */
uint64_t dispatch_last_accept_us(void);
void dispatch_accept_gap_from(uint64_t us);
/* The same, accepted at now (µs, CLOCK_MONOTONIC): one clock read per batch. */
struct conn *dispatch_conn_new_at(int fd, const char *listener, const char *peer, uint64_t now);
/* Close the fd and free (or recycle) the connection. */
void dispatch_conn_free(struct conn *c);

/* Point l at program p (NULL: at none), and p's listener array at l. */
void dispatch_link_listener(struct listener *l, struct program *p);
/* The listeners' accept hook: accept and hand on what the program can take. */
void dispatch_accept(struct listener *l);
/* The listeners' resume hook (after running out of fds). */
void dispatch_resume(struct listener *l);

/* Spare credit of a worker: 0 unless RUNNING. */
uint32_t dispatch_credit(const struct worker *w);
/* The RUNNING worker with the most spare credit, or NULL. */
struct worker *dispatch_pick(struct program *p);
/* True when a new connection would go straight to a worker. */
int dispatch_can_take(struct program *p);

/* Hand c to a worker's outbox, or queue it; call dispatch_flush() after. */
void dispatch_conn(struct program *p, struct conn *c);
/*
 * Move queued connections to workers with credit, send every outbox, and
 * pause or resume the program's listeners to match its credit.
 */
void dispatch_kick(struct program *p);
/* Send a worker's outbox, batching up to PROTO_CONN_MAX fds a message. */
void dispatch_flush(struct worker *w);

/*
 * Read what a worker sent on its channel (READY, ACK, DONE, HEARTBEAT), at
 * most max messages (-1: all that is queued); a protocol error fails the
 * worker.  dispatch_readable is the channel's event callback.
 */
void dispatch_read(struct worker *w, int max);
void dispatch_readable(int fd, short what, void *arg);

/* Handle ACK / DONE; -1 when the worker names what it does not have. */
int dispatch_ack(struct worker *w, const uint64_t *ids, int n);
int dispatch_done(struct worker *w, int n);
/*
 * Take back every connection a worker has not acknowledged (it died or
 * stopped taking work) and put it at the front of its program's queue.
 */
void dispatch_reclaim(struct worker *w, int unacked_too);
/* Close every queued connection (shutdown); returns how many. */
unsigned dispatch_drop_queue(struct program *p, const char *why);
/* The program is being freed: its queue closed, its timers freed. */
void dispatch_program_end(struct program *p);
/* Arm or re-arm the queue_timeout timer for the queue's oldest entry. */
void dispatch_arm_queue_timer(struct program *p);

/* reexec: the id the next connection gets (they never repeat), and a
 * restored worker's ACK deadline armed for its oldest unacked connection. */
uint64_t dispatch_next_id(void);
void dispatch_set_next_id(uint64_t id);
void dispatch_restored(struct worker *w);

/* Call write_ready (pending DRAIN, then the outbox) once the channel drains. */
void dispatch_want_write(struct worker *w);

#endif
