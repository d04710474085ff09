#include "dispatch.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batond.h"
#include "closer.h"
#include "fdpass.h"
#include "listener.h"
#include "log.h"
#include "pool.h"
#include "util.h"

#define ACCEPT_BATCH 64

/* Recycled conns, so the accept path does not call malloc in steady state. */
#define SPARE_MAX 256
static struct conn_list spare = TAILQ_HEAD_INITIALIZER(spare);
static unsigned nspare;
static uint64_t next_id = 1;
/* CLOCK_MONOTONIC µs of the last accept batch (0: none yet), and the old
 * image's, kept by a reexec until the new image's first accept. */
static uint64_t last_accept_us, gap_from_us;

struct conn *dispatch_conn_new(int fd, const char *listener, const char *peer)
{
	return dispatch_conn_new_at(fd, listener, peer, now_us());
}

struct conn *dispatch_conn_new_at(int fd, const char *listener, const char *peer, uint64_t now)
{
	struct conn *c = TAILQ_FIRST(&spare);
	if (c) {
		TAILQ_REMOVE(&spare, c, link);
		nspare--;
	} else if (!(c = malloc(sizeof(*c)))) {
		return NULL;
	}
	c->id = next_id++;
	c->fd = fd;
	c->accepted_us = now;
	c->accepted_ms = now / 1000;
	copy_cut(c->listener, sizeof(c->listener), listener, strnlen(listener, sizeof(c->listener)));
	copy_cut(c->peer, sizeof(c->peer), peer, strnlen(peer, sizeof(c->peer)));
	return c;
}

void dispatch_conn_free(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	if (nspare < SPARE_MAX) {
		TAILQ_INSERT_HEAD(&spare, c, link);
		nspare++;
	} else {
		free(c);
	}
}

/* Running, healthy and reachable: its capacity counts. */
static int takes_work(const struct worker *w)
{
	return w->state == WS_RUNNING && !w->broken && w->chan >= 0;
}

uint32_t dispatch_credit(const struct worker *w)
{
	if (!takes_work(w))
		return 0;
	uint64_t used = (uint64_t)w->queued + w->inflight + w->active;
	return used < w->capacity ? (uint32_t)(w->capacity - used) : 0;
}

/*
 * The worker for the next connection: the one with the most credit, unless
 * one already being filled (connections in its outbox, sent as one CONN at
 * the end of this wakeup) has less by fewer than PICK_SLACK.  So the connections
 * accepted in one wakeup go to one worker in one message, which wakes it
 * once and is acknowledged once, instead of alternating between workers
 * one connection at a time: on a busy machine that halves the messages and
 * wake-ups per connection for both sides.  The next wakeup's batch goes to
 * the worker with the most credit, and no worker is ever more than
 * PICK_SLACK connections ahead of another for it, so a burst of long-lived
 * connections still spreads.
 */
#define PICK_SLACK PROTO_CONN_MAX /* a full CONN message */

struct worker *dispatch_pick(struct program *p)
{
	struct worker *w, *best = NULL, *filling = NULL;
	uint32_t best_credit = 0, filling_credit = 0;
	TAILQ_FOREACH(w, &p->workers, link) {
		uint32_t c = dispatch_credit(w);
		/* Equal credit: the one handed fewer so far, so idle workers share. */
		if (c > best_credit ||
		    (c && c == best_credit && w->handed < best->handed)) {
			best = w;
			best_credit = c;
		}
		if (c && w->queued && c > filling_credit) {
			filling = w;
			filling_credit = c;
		}
	}
	return filling && best_credit - filling_credit < PICK_SLACK ? filling : best;
}

int dispatch_can_take(struct program *p)
{
	return TAILQ_EMPTY(&p->queue) && dispatch_pick(p) != NULL;
}

void dispatch_link_listener(struct listener *l, struct program *p)
{
	struct program *old = l->prog;
	if (old) {
		for (int i = 0; i < old->nlisteners; i++)
			if (old->listeners[i] == l) {
				old->listeners[i] = old->listeners[--old->nlisteners];
				break;
			}
	}
	l->prog = NULL;
	if (!p)
		return;
	struct listener **v = realloc(p->listeners, sizeof(*v) * (p->nlisteners + 1));
	if (!v)
		fatal("out of memory");
	p->listeners = v;
	v[p->nlisteners++] = l;
	l->prog = p;
}

/* A listener is readable: accept while its program can take connections,
 * at most ACCEPT_BATCH a wakeup, then hand them on. */
void dispatch_accept(struct listener *l)
{
	struct program *p = l->prog;
	char peer[PROTO_PEER_MAX];
	uint64_t now = 0;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		if (!dispatch_can_take(p))
			break;
		int fd = listener_accept(l, peer, sizeof(peer));
		if (fd < 0)
			break;
		if (!now) /* one clock read for the batch: accepted in one wakeup */
			now = now_us();
		struct conn *c = dispatch_conn_new_at(fd, l->cfg.name, peer, now);
		if (!c) {
			log_error("out of memory, closing new connection listener=%s", l->cfg.name);
			close(fd);
			p->dropped++;
			continue;
		}
		l->accepted++;
		dispatch_conn(p, c);
	}
	if (now) {
		if (gap_from_us && now > gap_from_us)
			log_info("reexec: first accept by the new image listener=%s accept_gap_ms=%.1f",
				 l->cfg.name, (double)(now - gap_from_us) / 1000.0);
		gap_from_us = 0;
		last_accept_us = now;
	}
	dispatch_kick(p);
}

uint64_t dispatch_last_accept_us(void)
{
	return last_accept_us;
}

void dispatch_accept_gap_from(uint64_t us)
{
	gap_from_us = us;
}

/* A listener that ran out of fds may accept again if there is credit. */
void dispatch_resume(struct listener *l)
{
	dispatch_kick(l->prog);
}

static void assign(struct worker *w, struct conn *c)
{
	TAILQ_INSERT_TAIL(&w->outbox, c, link);
	w->queued++;
}

void dispatch_conn(struct program *p, struct conn *c)
{
	struct worker *w;
	p->accepted++;
	if (TAILQ_EMPTY(&p->queue) && (w = dispatch_pick(p))) {
		assign(w, c);
		return;
	}
	TAILQ_INSERT_TAIL(&p->queue, c, link);
	p->nqueued++;
	if (p->nqueued == 1)
		dispatch_arm_queue_timer(p);
}

static void set_listeners_paused(struct program *p, int paused)
{
	for (int i = 0; i < p->nlisteners; i++)
		listener_set_paused(p->listeners[i], paused);
}

/*
 * Listener hysteresis.  A program out of credit pauses its listeners.
 * Under sustained overload each ACK or DONE would then give back a slot or
 * two, resume them, and the next accept would pause them again: an
 * epoll_ctl pair every few connections.  So once starved, the listeners
 * resume when half the program's capacity is free (at most RESUME_CREDIT
 * slots), or RESUME_DELAY_MS after credit first came back, whichever is
 * first.  The delay bounds what a client waiting in the backlog can lose;
 * workers holding long-lived connections, whose free credit may never
 * reach the threshold, cannot strand it.
 */
#define RESUME_CREDIT 16
#define RESUME_DELAY_MS 2

static int enough_credit(struct program *p)
{
	uint64_t capacity = 0, free = 0;
	struct worker *w;
	TAILQ_FOREACH(w, &p->workers, link) {
		if (takes_work(w))
			capacity += w->capacity;
		free += dispatch_credit(w);
	}
	uint64_t need = capacity / 2 < RESUME_CREDIT ? capacity / 2 : RESUME_CREDIT;
	return free >= (need ? need : 1);
}

static void resume_due(evutil_socket_t fd, short what, void *arg)
{
	struct program *p = arg;
	(void)fd;
	(void)what;
	p->starved = 0;
	dispatch_kick(p);
}

static void update_listeners(struct program *p)
{
	int pause = 1;

	if (batond.shutting_down) {
		/* paused for good */
	} else if (!dispatch_can_take(p)) {
		p->starved = 1;
		if (p->ev_resume)
			evtimer_del(p->ev_resume);
	} else if (p->starved && !enough_credit(p)) {
		if (!p->ev_resume && !(p->ev_resume = evtimer_new(batond.base, resume_due, p)))
			fatal("out of memory");
		if (!evtimer_pending(p->ev_resume, NULL)) {
			struct timeval tv = {0, RESUME_DELAY_MS * 1000};
			evtimer_add(p->ev_resume, &tv);
		}
	} else {
		pause = 0;
		p->starved = 0;
		if (p->ev_resume)
			evtimer_del(p->ev_resume);
	}
	set_listeners_paused(p, pause);
}

void dispatch_kick(struct program *p)
{
	struct conn *c;
	struct worker *w;

	while ((c = TAILQ_FIRST(&p->queue)) && (w = dispatch_pick(p))) {
		TAILQ_REMOVE(&p->queue, c, link);
		p->nqueued--;
		assign(w, c);
	}
	TAILQ_FOREACH(w, &p->workers, link)
		if (w->queued)
			dispatch_flush(w);
	update_listeners(p);
}

static void write_ready(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	(void)fd;
	(void)what;
	pool_send_drain(w);
	dispatch_flush(w);
}

void dispatch_want_write(struct worker *w)
{
	if (!w->ev_write)
		w->ev_write = event_new(batond.base, w->chan, EV_WRITE, write_ready, w);
	if (w->ev_write)
		event_add(w->ev_write, NULL);
}

static void arm_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(ev, &tv);
}

/*
 * A worker must acknowledge each connection within ack_timeout of its
 * handoff; one that does not is broken (it holds clients and fds without
 * serving them): killed, and its unacknowledged connections go to others
 * when it is reaped.  One timer per worker, due for the oldest
 * unacknowledged connection, so an ACK costs no timer work.
 */
static void ack_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	uint64_t limit = pool_cfg_for(w->prog, w->generation)->ack_timeout;
	struct conn *c = TAILQ_FIRST(&w->unacked);
	(void)fd;
	(void)what;

	if (!c || !limit || w->broken)
		return;
	uint64_t now = now_ms(), due = c->handed_ms + limit;
	if (now < due) {
		arm_ms(w->ev_ack, due - now);
		return;
	}
	char why[96];
	snprintf(why, sizeof(why), "no ACK within ack_timeout (%llu ms), %u connection%s unacknowledged",
		 (unsigned long long)limit, w->inflight, w->inflight == 1 ? "" : "s");
	pool_fail_worker(w, why);
}

void dispatch_restored(struct worker *w)
{
	uint64_t limit = pool_cfg_for(w->prog, w->generation)->ack_timeout;
	struct conn *c = TAILQ_FIRST(&w->unacked);
	if (!c || !limit || w->broken)
		return;
	if (!w->ev_ack && !(w->ev_ack = evtimer_new(batond.base, ack_deadline, w)))
		fatal("out of memory");
	uint64_t now = now_ms(), due = c->handed_ms + limit;
	arm_ms(w->ev_ack, due > now ? due - now : 0);
}

uint64_t dispatch_next_id(void)
{
	return next_id;
}

void dispatch_set_next_id(uint64_t id)
{
	next_id = id;
}

static void ack_arm(struct worker *w)
{
	uint64_t limit = pool_cfg_for(w->prog, w->generation)->ack_timeout;
	if (!limit)
		return;
	if (!w->ev_ack && !(w->ev_ack = evtimer_new(batond.base, ack_deadline, w)))
		fatal("out of memory");
	if (!evtimer_pending(w->ev_ack, NULL))
		arm_ms(w->ev_ack, limit);
}

void dispatch_flush(struct worker *w)
{
	uint8_t buf[PROTO_MSG_MAX];
	int fds[PROTO_CONN_MAX];
	struct proto_msg msg;

	while (w->queued && !w->broken && w->chan >= 0) {
		struct conn *c = TAILQ_FIRST(&w->outbox);
		int n = 0;
		msg.type = PROTO_CONN;
		for (; c && n < PROTO_CONN_MAX; c = TAILQ_NEXT(c, link), n++) {
			struct proto_conn *pc = &msg.u.conn.conns[n];
			pc->id = c->id;
			memcpy(pc->listener, c->listener, sizeof(pc->listener));
			memcpy(pc->peer, c->peer, sizeof(pc->peer));
			fds[n] = c->fd;
		}
		msg.u.conn.count = (uint16_t)n;
		int len = proto_encode(&msg, buf, sizeof(buf));
		if (len < 0)
			fatal("dispatch: cannot encode CONN of %d", n);
		if (fdpass_send(w->chan, buf, len, fds, n) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				dispatch_want_write(w); /* the channel is full */
				return;
			}
			if (errno == ETOOMANYREFS || errno == ENOBUFS) {
				/*
				 * Too many fds in flight (RLIMIT_NOFILE applies to
				 * fds queued on sockets) or no kernel memory: the
				 * socket is writable, so EV_WRITE would spin.
				 * Retry on a timer; the fds stay in the outbox.
				 */
				struct timeval tv = {0, 100000};
				if (!w->ev_retry)
					w->ev_retry = evtimer_new(batond.base, write_ready, w);
				if (w->ev_retry && !evtimer_pending(w->ev_retry, NULL)) {
					log_warn("fd handoff deferred program=%s slot=%d pid=%d reason=\"%s\" retry_ms=100",
						 w->prog->cfg.name, w->slot, (int)w->pid, strerror(errno));
					evtimer_add(w->ev_retry, &tv);
				}
				return;
			}
			pool_fail_worker(w, strerror(errno));
			return;
		}
		uint64_t now = now_ms();
		for (int i = 0; i < n; i++) {
			c = TAILQ_FIRST(&w->outbox);
			TAILQ_REMOVE(&w->outbox, c, link);
			c->handed_ms = now;
			TAILQ_INSERT_TAIL(&w->unacked, c, link);
		}
		ack_arm(w);
		w->queued -= n;
		w->inflight += n;
		w->handed += n;
		w->prog->handed += n;
	}
}

static void handle_msg(struct worker *w, const struct proto_msg *m)
{
	struct program *p = w->prog;
	switch (m->type) {
	case PROTO_READY:
		pool_worker_ready(w, m->u.ready.capacity);
		break;
	case PROTO_ACK:
		if (dispatch_ack(w, m->u.ids.ids, m->u.ids.count) < 0)
			pool_fail_worker(w, "ACK of a connection it was not sent");
		break;
	case PROTO_DONE:
		if (dispatch_done(w, m->u.ids.count) < 0) {
			pool_fail_worker(w, "DONE for more connections than it holds");
			break;
		}
		if (w->state == WS_RUNNING)
			dispatch_kick(p);
		break;
	case PROTO_HEARTBEAT:
		log_debug("heartbeat program=%s slot=%d pid=%d active=%u reported=%u",
			  p->cfg.name, w->slot, (int)w->pid, w->active,
			  m->u.heartbeat.active);
		break;
	}
}

/*
 * CLOCK_MONOTONIC µs, read once per dispatch_read (0: outside one): the
 * messages read in one wakeup share one clock read, for the worker's last
 * message time and the ACKs' handoff latency.
 */
static uint64_t read_us;

static uint64_t msg_clock_us(void)
{
	return read_us ? read_us : now_us();
}

static void read_msgs(struct worker *w, int max);

/* Read what the worker sent; max bounds the work done per callback. */
void dispatch_read(struct worker *w, int max)
{
	read_msgs(w, max);
	read_us = 0;
}

static void read_msgs(struct worker *w, int max)
{
	uint8_t buf[PROTO_MSG_MAX + 1];
	int fds[FDPASS_MAX], nfds;
	struct proto_msg m;
	char why[128];

	for (int i = 0; (max < 0 || i < max) && !w->broken && w->chan >= 0; i++) {
		ssize_t n = fdpass_recv(w->chan, buf, sizeof(buf), fds, &nfds);
		if (n < 0) {
			if (errno == EAGAIN)
				return;
			if (errno == ECONNRESET) {
				pool_channel_closed(w);
				return;
			}
			snprintf(why, sizeof(why), "protocol error: %s",
				 errno == EMSGSIZE ? "message or fds truncated"
				 : errno == EBADMSG ? "unexpected control message"
						    : strerror(errno));
			pool_fail_worker(w, why);
			return;
		}
		enum proto_err e = proto_decode(PROTO_AT_SUPERVISOR, buf, n, nfds, &m);
		closer_close_all(fds, nfds); /* workers never send fds; a close may block */
		if (e != PROTO_OK) {
			snprintf(why, sizeof(why), "protocol error: %s (type %u, %zd bytes, %d fds)",
				 proto_strerror(e), n >= 2 ? (unsigned)(buf[0] | buf[1] << 8) : 0u,
				 n, nfds);
			pool_fail_worker(w, why);
			return;
		}
		if (!read_us)
			read_us = now_us();
		w->last_msg_ms = read_us / 1000;
		w->status_sent = 0;
		handle_msg(w, &m);
	}
}

void dispatch_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dispatch_read(arg, 64);
}

const uint64_t dispatch_lat_bounds_us[DISPATCH_LAT_BUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 2500000,
};

static void record_latency(struct program *p, uint64_t us)
{
	int i = 0;
	while (i < DISPATCH_LAT_BUCKETS && us > dispatch_lat_bounds_us[i])
		i++;
	p->lat_bucket[i]++; /* counts per bucket; the report accumulates */
	p->lat_count++;
	p->lat_sum_us += us;
}

int dispatch_ack(struct worker *w, const uint64_t *ids, int n)
{
	/* Our copies of the acked fds, closed together at the end: the fds of
	 * one CONN are mostly consecutive numbers, one close_range() each run. */
	int fds[PROTO_IDS_MAX], nfds = 0, rc = 0;

	for (int i = 0; i < n; i++) {
		struct conn *c;
		/* Acks come in order, so the match is almost always the head. */
		TAILQ_FOREACH(c, &w->unacked, link)
			if (c->id == ids[i])
				break;
		if (!c) {
			rc = -1;
			break;
		}
		TAILQ_REMOVE(&w->unacked, c, link);
		uint64_t now = msg_clock_us();
		record_latency(w->prog, now > c->accepted_us ? now - c->accepted_us : 0);
		if (c->fd >= 0) {
			if (nfds == PROTO_IDS_MAX) {
				fd_close_all(fds, nfds);
				nfds = 0;
			}
			fds[nfds++] = c->fd;
			c->fd = -1;
		}
		dispatch_conn_free(c);
		w->inflight--;
		w->active++;
		w->acked++;
		w->prog->acked++;
	}
	fd_close_all(fds, nfds);
	return rc;
}

int dispatch_done(struct worker *w, int n)
{
	if ((uint32_t)n > w->active)
		return -1;
	w->active -= n;
	return 0;
}

void dispatch_reclaim(struct worker *w, int unacked_too)
{
	struct program *p = w->prog;
	struct conn *c;
	unsigned n = 0;

	/* Unacked ones were accepted first, so they go in front of the outbox. */
	while ((c = TAILQ_LAST(&w->outbox, conn_list))) {
		TAILQ_REMOVE(&w->outbox, c, link);
		TAILQ_INSERT_HEAD(&p->queue, c, link);
		w->queued--;
		p->nqueued++;
		n++;
	}
	while (unacked_too && (c = TAILQ_LAST(&w->unacked, conn_list))) {
		TAILQ_REMOVE(&w->unacked, c, link);
		TAILQ_INSERT_HEAD(&p->queue, c, link);
		w->inflight--;
		p->nqueued++;
		p->redispatched++;
		n++;
	}
	if (n) {
		log_info("requeued connections program=%s slot=%d pid=%d count=%u",
			 p->cfg.name, w->slot, (int)w->pid, n);
		dispatch_arm_queue_timer(p);
	}
}

void dispatch_program_end(struct program *p)
{
	if (p->ev_queue)
		event_free(p->ev_queue);
	if (p->ev_resume)
		event_free(p->ev_resume);
	p->ev_queue = p->ev_resume = NULL;
	dispatch_drop_queue(p, "shutdown");
}

unsigned dispatch_drop_queue(struct program *p, const char *why)
{
	struct conn *c;
	unsigned n = 0;
	while ((c = TAILQ_FIRST(&p->queue))) {
		TAILQ_REMOVE(&p->queue, c, link);
		dispatch_conn_free(c);
		p->nqueued--;
		p->dropped++;
		n++;
	}
	if (n)
		log_warn("closed queued connections program=%s count=%u reason=\"%s\"",
			 p->cfg.name, n, why);
	return n;
}

static void queue_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct program *p = arg;
	struct conn *c, *next;
	uint64_t now = now_ms();
	unsigned n = 0;
	(void)fd;
	(void)what;

	/* Re-queued conns go to the front, so check the whole queue. */
	for (c = TAILQ_FIRST(&p->queue); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->accepted_ms + p->cfg.queue_timeout > now)
			continue;
		TAILQ_REMOVE(&p->queue, c, link);
		dispatch_conn_free(c);
		p->nqueued--;
		p->dropped++;
		n++;
	}
	if (n)
		log_warn("closed connections no worker could take program=%s count=%u queue_timeout=%llums",
			 p->cfg.name, n, (unsigned long long)p->cfg.queue_timeout);
	dispatch_arm_queue_timer(p);
	dispatch_kick(p);
}

void dispatch_arm_queue_timer(struct program *p)
{
	struct conn *c;
	uint64_t oldest = UINT64_MAX, now = now_ms();

	if (!p->ev_queue &&
	    !(p->ev_queue = evtimer_new(batond.base, queue_timeout, p)))
		fatal("out of memory");
	TAILQ_FOREACH(c, &p->queue, link)
		if (c->accepted_ms < oldest)
			oldest = c->accepted_ms;
	if (oldest == UINT64_MAX) {
		evtimer_del(p->ev_queue);
		return;
	}
	uint64_t due = oldest + p->cfg.queue_timeout;
	uint64_t wait = due > now ? due - now : 0;
	struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
	evtimer_add(p->ev_queue, &tv);
}
