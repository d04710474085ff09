/*
 * Connection handoff (dispatch.c) with hand-built programs and workers.
 * Each worker's channel is one end of a SEQPACKET socketpair; the test plays
 * the worker on the other end with fdpass_recv + proto_decode.  Each
 * connection is one end of a stream socketpair whose other end ("client")
 * the test keeps, to see when every copy of the connection is closed.
 */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "batond.h"
#include "dispatch.h"
#include "fdpass.h"
#include "listener.h"
#include "pool.h"
#include "proto.h"
#include "util.h"

/* main.c is not linked: the supervisor objects need these. */

/* A pid no process has: pool_fail_worker() signals -pid and pid. */
#define NO_PID ((pid_t)0x7ffffff0)
#define MAXW 4
#define MAXC 128

struct fx {
	int nfds;
	struct program p;
	struct worker w[MAXW];
	int peer[MAXW]; /* the worker's end of each channel */
	int nw;
	struct conn *conn[MAXC]; /* as created, in accept order */
	int fd[MAXC];            /* the supervisor's copy (conn->fd) */
	int client[MAXC];        /* the other end, kept by the test */
	int nc;
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

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->nfds = count_fds();
	batond.base = event_base_new();
	batond.shutting_down = 0;
	if (!batond.base) {
		free(f);
		return -1;
	}
	snprintf(f->p.cfg.name, sizeof(f->p.cfg.name), "app");
	f->p.cfg.queue_timeout = 5000;
	f->p.cfg.capacity = 1024;
	TAILQ_INIT(&f->p.workers);
	TAILQ_INIT(&f->p.queue);
	for (int i = 0; i < MAXC; i++)
		f->client[i] = -1;
	*state = f;
	return 0;
}

static void free_list(struct conn_list *l)
{
	struct conn *c;
	while ((c = TAILQ_FIRST(l))) {
		TAILQ_REMOVE(l, c, link);
		dispatch_conn_free(c);
	}
}

static int teardown(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < f->nw; i++) {
		struct worker *w = &f->w[i];
		free_list(&w->outbox);
		free_list(&w->unacked);
		if (w->ev_write)
			event_free(w->ev_write);
		if (w->ev_ack)
			event_free(w->ev_ack);
		if (w->chan >= 0)
			close(w->chan);
		if (f->peer[i] >= 0)
			close(f->peer[i]);
	}
	dispatch_program_end(&f->p);
	for (int i = 0; i < f->nc; i++)
		if (f->client[i] >= 0)
			close(f->client[i]);
	event_base_free(batond.base);
	batond.base = NULL;
	batond.shutting_down = 0;
	int now = count_fds(), leaked = now != f->nfds;
	if (leaked)
		print_error("fd leak: %d open before the test, %d after\n", f->nfds, now);
	free(f);
	return leaked ? -1 : 0;
}

static struct worker *add_worker(struct fx *f, uint32_t capacity, enum worker_state st)
{
	int sv[2];
	assert_true(f->nw < MAXW);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
			 0);
	struct worker *w = &f->w[f->nw];
	memset(w, 0, sizeof(*w));
	w->prog = &f->p;
	w->slot = f->nw;
	w->generation = 1;
	w->pid = NO_PID;
	w->chan = sv[0];
	w->state = st;
	w->capacity = capacity;
	TAILQ_INIT(&w->outbox);
	TAILQ_INIT(&w->unacked);
	TAILQ_INSERT_TAIL(&f->p.workers, w, link);
	f->peer[f->nw++] = sv[1];
	return w;
}

/* Accept a connection: a new conn the test can follow by index. */
static int new_conn(struct fx *f, const char *listener, const char *peer)
{
	int sp[2];
	assert_true(f->nc < MAXC);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	struct conn *c = dispatch_conn_new(sp[0], listener, peer);
	assert_non_null(c);
	assert_int_equal(c->fd, sp[0]);
	f->conn[f->nc] = c;
	f->fd[f->nc] = sp[0];
	f->client[f->nc] = sp[1];
	return f->nc++;
}

static int dispatch_new(struct fx *f)
{
	char peer[32];
	snprintf(peer, sizeof(peer), "10.0.0.%d:%d", f->nc % 250, 40000 + f->nc);
	int i = new_conn(f, "web", peer);
	dispatch_conn(&f->p, f->conn[i]);
	return i;
}

static int fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int fd_is_closed(int fd)
{
	errno = 0;
	return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

/* The client end sees EOF: every copy of the connection is closed. */
static int client_sees_eof(int client)
{
	char b;
	return recv(client, &b, 1, MSG_DONTWAIT) == 0;
}

/* Receive one message as the worker; -1 when nothing is waiting. */
static int recv_msg(int peer, struct proto_msg *m, int *fds)
{
	uint8_t buf[PROTO_MSG_MAX + 1];
	int nfds;
	ssize_t n = fdpass_recv(peer, buf, sizeof(buf), fds, &nfds);
	if (n < 0) {
		assert_int_equal(errno, EAGAIN);
		return -1;
	}
	enum proto_err e = proto_decode(PROTO_AT_WORKER, buf, (size_t)n, nfds, m);
	if (e != PROTO_OK)
		fail_msg("decode: %s", proto_strerror(e));
	assert_int_equal(m->type, PROTO_CONN);
	assert_int_equal(proto_nfds(m), nfds);
	return nfds;
}

/* The fd the worker got is the connection: bytes reach the client. */
static void assert_same_conn(int got, int client)
{
	char b = 0;
	assert_int_equal(write(got, "k", 1), 1);
	assert_int_equal(recv(client, &b, 1, MSG_DONTWAIT), 1);
	assert_int_equal(b, 'k');
}

static uint64_t queue_id(struct program *p, int pos)
{
	struct conn *c = TAILQ_FIRST(&p->queue);
	for (int i = 0; c && i < pos; i++)
		c = TAILQ_NEXT(c, link);
	return c ? c->id : 0;
}

/* ---- credit and choice ---- */

static void test_conn_new(void **state)
{
	struct fx *f = *state;
	char longname[80];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';

	uint64_t t0 = now_ms();
	int a = new_conn(f, "web", "1.2.3.4:5");
	int b = new_conn(f, longname, longname);
	assert_string_equal(f->conn[a]->listener, "web");
	assert_string_equal(f->conn[a]->peer, "1.2.3.4:5");
	assert_true(f->conn[b]->id > f->conn[a]->id);
	assert_true(f->conn[a]->accepted_ms >= t0 && f->conn[a]->accepted_ms <= now_ms());
	/* Cut to the protocol's fields, NUL terminated. */
	assert_int_equal(strlen(f->conn[b]->listener), PROTO_LISTENER_MAX - 1);
	assert_int_equal(strlen(f->conn[b]->peer), PROTO_PEER_MAX - 1);

	/* Freeing closes the supervisor's copy. */
	dispatch_conn_free(f->conn[a]);
	dispatch_conn_free(f->conn[b]);
	assert_true(fd_is_closed(f->fd[a]));
	assert_true(client_sees_eof(f->client[a]));
	assert_true(client_sees_eof(f->client[b]));
	/* A recycled conn gets a fresh id and its own fields. */
	uint64_t last = f->conn[b]->id;
	int c = new_conn(f, "x", "y");
	assert_true(f->conn[c]->id > last);
	assert_string_equal(f->conn[c]->listener, "x");
	assert_string_equal(f->conn[c]->peer, "y");
	dispatch_conn_free(f->conn[c]);
}

static void test_credit(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 10, WS_STARTING);

	assert_int_equal(dispatch_credit(w), 0);
	w->state = WS_RUNNING;
	assert_int_equal(dispatch_credit(w), 10);
	w->queued = 2;
	w->inflight = 3;
	w->active = 4;
	assert_int_equal(dispatch_credit(w), 1);
	w->active = 5;
	assert_int_equal(dispatch_credit(w), 0);
	w->active = 50; /* never wraps */
	assert_int_equal(dispatch_credit(w), 0);
	w->queued = w->inflight = w->active = 0;
	w->state = WS_DRAINING;
	assert_int_equal(dispatch_credit(w), 0);
	w->state = WS_STOPPING;
	assert_int_equal(dispatch_credit(w), 0);
	w->state = WS_RUNNING;
	w->broken = 1;
	assert_int_equal(dispatch_credit(w), 0);
	w->broken = 0;
	int chan = w->chan;
	w->chan = -1;
	assert_int_equal(dispatch_credit(w), 0);
	w->chan = chan;
	assert_int_equal(dispatch_credit(w), 10);
	w->capacity = 0;
	assert_int_equal(dispatch_credit(w), 0);
}

static void test_pick(void **state)
{
	struct fx *f = *state;

	assert_null(dispatch_pick(&f->p)); /* no workers */
	assert_false(dispatch_can_take(&f->p));

	struct worker *a = add_worker(f, 5, WS_RUNNING);
	struct worker *b = add_worker(f, 8, WS_RUNNING);
	struct worker *c = add_worker(f, 20, WS_STARTING);
	assert_ptr_equal(dispatch_pick(&f->p), b);
	assert_true(dispatch_can_take(&f->p));
	b->active = 4; /* 4 left against a's 5 */
	assert_ptr_equal(dispatch_pick(&f->p), a);
	c->state = WS_RUNNING;
	assert_ptr_equal(dispatch_pick(&f->p), c);
	c->state = WS_DRAINING;
	a->inflight = 5;
	b->queued = 4;
	assert_null(dispatch_pick(&f->p)); /* all full */
	assert_false(dispatch_can_take(&f->p));
	a->inflight = 0;
	b->queued = 0;
	b->active = 0;
	a->state = b->state = WS_STOPPING;
	assert_null(dispatch_pick(&f->p)); /* none RUNNING */

	/* Equal credit: the one handed fewer so far. */
	a->state = b->state = WS_RUNNING;
	b->capacity = 5;
	a->handed = 7;
	b->handed = 3;
	assert_ptr_equal(dispatch_pick(&f->p), b);
	b->handed = 9;
	assert_ptr_equal(dispatch_pick(&f->p), a);
}

/* Connections of one wakeup go to the worker already being filled while it
 * has less credit than the best by fewer than PICK_SLACK (16). */
static void test_pick_fills_one_worker_a_wakeup(void **state)
{
	struct fx *f = *state;
	struct worker *a = add_worker(f, 100, WS_RUNNING);
	struct worker *b = add_worker(f, 100, WS_RUNNING);
	struct worker *c = add_worker(f, 100, WS_RUNNING);

	a->handed = 1; /* b and c tie, b first */
	c->handed = 1;
	int to_b = 0;
	for (int i = 0; i < 40; i++) {
		struct worker *w = dispatch_pick(&f->p);
		assert_non_null(w);
		if (i < 15)
			assert_ptr_equal(w, b); /* 15 ahead of a and c: still b */
		to_b += w == b;
		w->queued++;
	}
	/* Nobody more than 16 ahead: the 16th went to a (its credit was best by
	 * 16), then a filled up to b, then c, and so on. */
	assert_true(to_b < 40 && to_b >= 15);
	uint32_t lo = dispatch_credit(a), hi = lo;
	struct worker *ws[] = {a, b, c};
	for (int i = 0; i < 3; i++) {
		uint32_t cr = dispatch_credit(ws[i]);
		lo = cr < lo ? cr : lo;
		hi = cr > hi ? cr : hi;
	}
	assert_true(hi - lo <= 16);

	/* The next wakeup: outboxes sent, the batch goes to the one with the
	 * most credit. */
	a->inflight += a->queued;
	b->inflight += b->queued;
	c->inflight += c->queued;
	a->queued = b->queued = c->queued = 0;
	struct worker *w = dispatch_pick(&f->p);
	assert_int_equal(dispatch_credit(w), hi);

	/* A worker being filled that runs out of credit is left. */
	a->queued = 1;
	a->inflight = 99;
	assert_ptr_not_equal(dispatch_pick(&f->p), a);
}

/* ---- sending: one CONN message for what was dispatched before a flush ---- */

static void test_batch_one_message(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 100, WS_RUNNING);
	struct proto_msg m;
	int fds[FDPASS_MAX];

	for (int i = 0; i < 5; i++)
		dispatch_new(f);
	assert_int_equal(f->p.accepted, 5);
	assert_int_equal(w->queued, 5);
	assert_int_equal(w->inflight, 0);
	assert_int_equal(f->p.nqueued, 0);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), -1); /* nothing sent yet */

	dispatch_kick(&f->p);
	assert_int_equal(w->queued, 0);
	assert_int_equal(w->inflight, 5);
	assert_int_equal(w->handed, 5);
	assert_int_equal(f->p.handed, 5);

	assert_int_equal(recv_msg(f->peer[0], &m, fds), 5);
	assert_int_equal(m.u.conn.count, 5);
	for (int i = 0; i < 5; i++) {
		char peer[32];
		snprintf(peer, sizeof(peer), "10.0.0.%d:%d", i, 40000 + i);
		assert_int_equal(m.u.conn.conns[i].id, f->conn[i]->id);
		assert_string_equal(m.u.conn.conns[i].listener, "web");
		assert_string_equal(m.u.conn.conns[i].peer, peer);
		assert_same_conn(fds[i], f->client[i]);
		/* The supervisor keeps its copy until the ack. */
		assert_true(fd_is_open(f->fd[i]));
		/* Received close-on-exec. */
		assert_true(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
	}
	fdpass_close_all(fds, 5);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), -1); /* exactly one message */

	/* A flush with nothing queued sends nothing. */
	dispatch_kick(&f->p);
	dispatch_flush(w);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), -1);
}

static void test_batch_20(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 100, WS_RUNNING);
	struct proto_msg m;
	int fds[FDPASS_MAX];

	for (int i = 0; i < 20; i++)
		dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(w->inflight, 20);

	assert_int_equal(recv_msg(f->peer[0], &m, fds), PROTO_CONN_MAX);
	for (int i = 0; i < PROTO_CONN_MAX; i++)
		assert_int_equal(m.u.conn.conns[i].id, f->conn[i]->id);
	fdpass_close_all(fds, PROTO_CONN_MAX);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(m.u.conn.conns[i].id, f->conn[PROTO_CONN_MAX + i]->id);
		assert_same_conn(fds[i], f->client[PROTO_CONN_MAX + i]);
	}
	fdpass_close_all(fds, 4);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), -1);

	/* The unacked list holds them in accept order. */
	struct conn *c;
	int i = 0;
	TAILQ_FOREACH(c, &w->unacked, link)
		assert_ptr_equal(c, f->conn[i++]);
	assert_int_equal(i, 20);
}

/* ---- credit accounting: queued -> inflight -> active -> free ---- */

static void test_accounting(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 3, WS_RUNNING);
	struct proto_msg m;
	int fds[FDPASS_MAX];

	int a = dispatch_new(f);
	assert_int_equal(w->queued, 1);
	assert_int_equal(dispatch_credit(w), 2);
	dispatch_kick(&f->p);
	assert_int_equal(w->queued, 0);
	assert_int_equal(w->inflight, 1);
	assert_int_equal(dispatch_credit(w), 2);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 1);
	uint64_t id = m.u.conn.conns[0].id;
	assert_int_equal(id, f->conn[a]->id);

	/* Unknown ids are refused and change nothing. */
	uint64_t bogus = id + 1000;
	assert_int_equal(dispatch_ack(w, &bogus, 1), -1);
	assert_int_equal(w->inflight, 1);
	assert_int_equal(w->active, 0);
	assert_true(fd_is_open(f->fd[a]));

	assert_int_equal(dispatch_ack(w, &id, 1), 0);
	assert_int_equal(w->inflight, 0);
	assert_int_equal(w->active, 1);
	assert_int_equal(w->acked, 1);
	assert_int_equal(f->p.acked, 1);
	assert_int_equal(dispatch_credit(w), 2);
	/* The ack closed the supervisor's copy... */
	assert_true(fd_is_closed(f->fd[a]));
	assert_true(TAILQ_EMPTY(&w->unacked));
	/* ...so once the worker closes its own, the client sees the end. */
	assert_false(client_sees_eof(f->client[a]));
	close(fds[0]);
	assert_true(client_sees_eof(f->client[a]));

	/* The same id twice is a protocol error. */
	assert_int_equal(dispatch_ack(w, &id, 1), -1);
	assert_int_equal(w->active, 1);

	assert_int_equal(dispatch_done(w, 2), -1); /* holds only one */
	assert_int_equal(w->active, 1);
	assert_int_equal(dispatch_done(w, -1), -1);
	assert_int_equal(dispatch_done(w, 1), 0);
	assert_int_equal(w->active, 0);
	assert_int_equal(dispatch_credit(w), 3);
	assert_int_equal(dispatch_done(w, 1), -1); /* beyond active */
	assert_int_equal(dispatch_done(w, 0), 0);
}

static void test_ack_batch_any_order(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 10, WS_RUNNING);
	struct proto_msg m;
	int fds[FDPASS_MAX];

	for (int i = 0; i < 4; i++)
		dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 4);
	fdpass_close_all(fds, 4);

	uint64_t ids[3] = {f->conn[2]->id, f->conn[0]->id, f->conn[3]->id};
	assert_int_equal(dispatch_ack(w, ids, 3), 0);
	assert_int_equal(w->inflight, 1);
	assert_int_equal(w->active, 3);
	assert_true(fd_is_closed(f->fd[0]));
	assert_true(fd_is_open(f->fd[1]));
	assert_true(fd_is_closed(f->fd[2]));
	assert_true(fd_is_closed(f->fd[3]));
	assert_ptr_equal(TAILQ_FIRST(&w->unacked), f->conn[1]);

	assert_int_equal(dispatch_done(w, 3), 0);
	assert_int_equal(dispatch_credit(w), 9);
}

/* An ACK whose last id is unknown is refused (the worker is failed for it),
 * but the ids before it were good: those copies are closed and counted,
 * the rest stay unacked for the reclaim. */
static void test_ack_bad_tail(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 10, WS_RUNNING);
	struct proto_msg m;
	int fds[FDPASS_MAX];

	for (int i = 0; i < 3; i++)
		dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 3);
	fdpass_close_all(fds, 3);

	uint64_t ids[3] = {f->conn[1]->id, f->conn[0]->id, f->conn[2]->id + 1000};
	assert_int_equal(dispatch_ack(w, ids, 3), -1);
	assert_true(fd_is_closed(f->fd[0]));
	assert_true(fd_is_closed(f->fd[1]));
	assert_true(fd_is_open(f->fd[2]));
	assert_int_equal(w->inflight, 1);
	assert_int_equal(w->active, 2);
	assert_ptr_equal(TAILQ_FIRST(&w->unacked), f->conn[2]);
}

/* ---- the program queue ---- */

static void test_queue_fifo(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 2, WS_RUNNING);
	struct proto_msg m;
	int fds[FDPASS_MAX];

	dispatch_new(f);
	dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(dispatch_credit(w), 0);
	assert_false(dispatch_can_take(&f->p));
	for (int i = 0; i < 3; i++)
		dispatch_new(f);
	assert_int_equal(f->p.accepted, 5);
	assert_int_equal(f->p.nqueued, 3);
	assert_int_equal(w->queued, 0);
	assert_true(evtimer_pending(f->p.ev_queue, NULL)); /* queue_timeout armed */
	assert_int_equal(queue_id(&f->p, 0), f->conn[2]->id);
	assert_int_equal(queue_id(&f->p, 2), f->conn[4]->id);

	assert_int_equal(recv_msg(f->peer[0], &m, fds), 2);
	fdpass_close_all(fds, 2);
	uint64_t ids[2] = {m.u.conn.conns[0].id, m.u.conn.conns[1].id};
	assert_int_equal(dispatch_ack(w, ids, 2), 0);
	/* Acked but still active: no credit yet, nothing moves. */
	dispatch_kick(&f->p);
	assert_int_equal(f->p.nqueued, 3);
	assert_int_equal(dispatch_done(w, 2), 0);
	assert_false(dispatch_can_take(&f->p)); /* credit, but a queue first */

	/* A connection accepted now waits behind the queue, not ahead. */
	dispatch_new(f);
	assert_int_equal(f->p.nqueued, 4);
	assert_int_equal(w->queued, 0);

	dispatch_kick(&f->p);
	assert_int_equal(f->p.nqueued, 2);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 2);
	fdpass_close_all(fds, 2);
	assert_int_equal(m.u.conn.conns[0].id, f->conn[2]->id);
	assert_int_equal(m.u.conn.conns[1].id, f->conn[3]->id);
	ids[0] = m.u.conn.conns[0].id;
	ids[1] = m.u.conn.conns[1].id;
	assert_int_equal(dispatch_ack(w, ids, 2), 0);
	assert_int_equal(dispatch_done(w, 2), 0);

	dispatch_kick(&f->p);
	assert_int_equal(f->p.nqueued, 0);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 2);
	fdpass_close_all(fds, 2);
	assert_int_equal(m.u.conn.conns[0].id, f->conn[4]->id);
	assert_int_equal(m.u.conn.conns[1].id, f->conn[5]->id);
	assert_int_equal(f->p.handed, 6);
	assert_int_equal(f->p.dropped, 0);
}

/* With no RUNNING worker everything queues. */
static void test_queue_no_worker(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 10, WS_STARTING);
	struct proto_msg m;
	int fds[FDPASS_MAX];

	for (int i = 0; i < 3; i++)
		dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(f->p.nqueued, 3);
	assert_int_equal(w->queued, 0);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), -1);

	w->state = WS_RUNNING; /* what READY does, then a kick */
	dispatch_kick(&f->p);
	assert_int_equal(f->p.nqueued, 0);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(m.u.conn.conns[i].id, f->conn[i]->id);
	fdpass_close_all(fds, 3);
}

/* Work spreads over workers by spare credit. */
static void test_spread(void **state)
{
	struct fx *f = *state;
	struct worker *a = add_worker(f, 4, WS_RUNNING);
	struct worker *b = add_worker(f, 4, WS_RUNNING);

	for (int i = 0; i < 8; i++)
		dispatch_new(f);
	assert_int_equal(a->queued, 4);
	assert_int_equal(b->queued, 4);
	dispatch_new(f);
	assert_int_equal(f->p.nqueued, 1);
	dispatch_kick(&f->p);
	assert_int_equal(a->inflight + b->inflight, 8);
	assert_int_equal(f->p.nqueued, 1);
}

/* ---- taking connections back ---- */

static void test_reclaim(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 5, WS_RUNNING);
	struct proto_msg m;
	int fds[FDPASS_MAX];

	for (int i = 0; i < 3; i++) /* 0..2: sent, unacked */
		dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 3);
	fdpass_close_all(fds, 3);
	dispatch_new(f); /* 3, 4: in the outbox */
	dispatch_new(f);
	dispatch_new(f); /* 5: no credit, in the queue */
	assert_int_equal(w->inflight, 3);
	assert_int_equal(w->queued, 2);
	assert_int_equal(f->p.nqueued, 1);

	/* Outbox only: those go back in front of the queue, in order. */
	dispatch_reclaim(w, 0);
	assert_int_equal(w->queued, 0);
	assert_int_equal(w->inflight, 3);
	assert_int_equal(f->p.nqueued, 3);
	assert_int_equal(f->p.redispatched, 0);
	assert_int_equal(queue_id(&f->p, 0), f->conn[3]->id);
	assert_int_equal(queue_id(&f->p, 1), f->conn[4]->id);
	assert_int_equal(queue_id(&f->p, 2), f->conn[5]->id);

	/* And the unacked ones ahead of those. */
	w->state = WS_STOPPING;
	dispatch_reclaim(w, 1);
	assert_int_equal(w->inflight, 0);
	assert_true(TAILQ_EMPTY(&w->unacked));
	assert_int_equal(f->p.nqueued, 6);
	assert_int_equal(f->p.redispatched, 3);
	for (int i = 0; i < 6; i++)
		assert_int_equal(queue_id(&f->p, i), f->conn[i]->id);
	assert_true(evtimer_pending(f->p.ev_queue, NULL));
	/* The supervisor still owns every one of them. */
	for (int i = 0; i < 6; i++)
		assert_true(fd_is_open(f->fd[i]));
	/* A late ack from the dead worker names what it no longer has. */
	uint64_t id = f->conn[0]->id;
	assert_int_equal(dispatch_ack(w, &id, 1), -1);

	/* Nothing to take back: nothing changes. */
	dispatch_reclaim(w, 1);
	assert_int_equal(f->p.nqueued, 6);
	assert_int_equal(f->p.redispatched, 3);

	/* Another worker gets them all, in accept order, in one message. */
	add_worker(f, 10, WS_RUNNING);
	dispatch_kick(&f->p);
	assert_int_equal(f->p.nqueued, 0);
	assert_int_equal(recv_msg(f->peer[1], &m, fds), 6);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(m.u.conn.conns[i].id, f->conn[i]->id);
		assert_same_conn(fds[i], f->client[i]);
	}
	fdpass_close_all(fds, 6);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), -1);
}

/* Reclaimed connections go ahead of ones queued earlier by others. */
static void test_reclaim_front(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 2, WS_RUNNING);

	dispatch_new(f); /* 0, 1: outbox */
	dispatch_new(f);
	dispatch_new(f); /* 2, 3: queue */
	dispatch_new(f);
	dispatch_reclaim(w, 1);
	assert_int_equal(f->p.nqueued, 4);
	assert_int_equal(f->p.redispatched, 0); /* never sent: not redispatched */
	for (int i = 0; i < 4; i++)
		assert_int_equal(queue_id(&f->p, i), f->conn[i]->id);
}

/* ---- closing what nobody can take ---- */

static void run_until(uint32_t *counter, uint32_t below, int max_ms)
{
	uint64_t end = now_ms() + (uint64_t)max_ms;
	while (*counter >= below && now_ms() < end)
		event_base_loop(batond.base, EVLOOP_ONCE);
}

static void test_queue_timeout(void **state)
{
	struct fx *f = *state;
	f->p.cfg.queue_timeout = 50;

	uint64_t t0 = now_ms();
	for (int i = 0; i < 3; i++)
		dispatch_new(f);
	assert_int_equal(f->p.nqueued, 3);
	assert_non_null(f->p.ev_queue);
	assert_true(evtimer_pending(f->p.ev_queue, NULL));
	for (int i = 0; i < 3; i++)
		assert_false(client_sees_eof(f->client[i]));

	run_until(&f->p.nqueued, 1, 2000);
	uint64_t took = now_ms() - t0;
	assert_int_equal(f->p.nqueued, 0);
	assert_int_equal(f->p.dropped, 3);
	assert_true(took >= 50);
	assert_true(took < 1000);
	for (int i = 0; i < 3; i++) {
		assert_true(fd_is_closed(f->fd[i]));
		assert_true(client_sees_eof(f->client[i]));
	}
	assert_true(TAILQ_EMPTY(&f->p.queue));
}

/* Each connection gets its own queue_timeout from when it was accepted. */
static void test_queue_timeout_each(void **state)
{
	struct fx *f = *state;
	f->p.cfg.queue_timeout = 80;

	int a = dispatch_new(f);
	struct timeval tv = {0, 40000};
	event_base_loopexit(batond.base, &tv);
	event_base_dispatch(batond.base);
	assert_int_equal(f->p.nqueued, 1); /* not yet */
	int b = dispatch_new(f);

	run_until(&f->p.nqueued, 2, 2000);
	assert_int_equal(f->p.nqueued, 1);
	assert_int_equal(f->p.dropped, 1);
	assert_true(client_sees_eof(f->client[a]));
	assert_false(client_sees_eof(f->client[b]));
	assert_int_equal(queue_id(&f->p, 0), f->conn[b]->id);
	/* The timer was re-armed for the one left. */
	assert_true(evtimer_pending(f->p.ev_queue, NULL));
	run_until(&f->p.nqueued, 1, 2000);
	assert_int_equal(f->p.dropped, 2);
	assert_true(client_sees_eof(f->client[b]));
}

/* A connection a worker takes in time is not closed by the timer. */
static void test_queue_timeout_spares_dispatched(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 1, WS_STARTING);
	struct proto_msg m;
	int fds[FDPASS_MAX];
	f->p.cfg.queue_timeout = 30;

	dispatch_new(f);
	w->state = WS_RUNNING;
	dispatch_kick(&f->p);
	assert_int_equal(f->p.nqueued, 0);
	/* Let the (stale) timer fire. */
	struct timeval tv = {0, 80000};
	event_base_loopexit(batond.base, &tv);
	event_base_dispatch(batond.base);
	assert_int_equal(f->p.dropped, 0);
	assert_int_equal(w->inflight, 1);
	assert_true(fd_is_open(f->fd[0]));
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 1);
	fdpass_close_all(fds, 1);
}

static void test_drop_queue(void **state)
{
	struct fx *f = *state;
	assert_int_equal(dispatch_drop_queue(&f->p, "empty"), 0);
	for (int i = 0; i < 4; i++)
		dispatch_new(f);
	assert_int_equal(f->p.nqueued, 4);
	assert_int_equal(dispatch_drop_queue(&f->p, "shutdown"), 4);
	assert_int_equal(f->p.nqueued, 0);
	assert_int_equal(f->p.dropped, 4);
	assert_true(TAILQ_EMPTY(&f->p.queue));
	for (int i = 0; i < 4; i++) {
		assert_true(fd_is_closed(f->fd[i]));
		assert_true(client_sees_eof(f->client[i]));
	}
	assert_int_equal(dispatch_drop_queue(&f->p, "again"), 0);
	assert_int_equal(f->p.dropped, 4);
}

/* ---- the channel: full, and broken ---- */

static void test_backpressure(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 1000, WS_RUNNING);
	struct proto_msg m;
	int fds[FDPASS_MAX];
	const int total = 100;
	int got = 0, small = 1;

	/* The smallest send buffer: only a message or two fit. */
	assert_int_equal(setsockopt(w->chan, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	for (int i = 0; i < total; i++)
		dispatch_new(f);
	dispatch_kick(&f->p);
	assert_true(w->queued > 0);
	assert_true(w->inflight > 0);
	assert_int_equal(w->queued + w->inflight, total);
	assert_int_equal(w->queued + w->inflight + w->active + dispatch_credit(w), 1000);
	assert_non_null(w->ev_write);
	assert_true(event_pending(w->ev_write, EV_WRITE, NULL));

	/* The worker reads; each time the channel drains the rest goes out. */
	uint64_t end = now_ms() + 2000;
	while (got < total && now_ms() < end) {
		int n;
		while ((n = recv_msg(f->peer[0], &m, fds)) > 0) {
			for (int i = 0; i < n; i++)
				assert_int_equal(m.u.conn.conns[i].id, f->conn[got + i]->id);
			fdpass_close_all(fds, n);
			got += n;
		}
		event_base_loop(batond.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	}
	assert_int_equal(got, total);
	assert_int_equal(w->queued, 0);
	assert_int_equal(w->inflight, total);
	assert_int_equal(f->p.handed, total);
}

static void test_send_failure(void **state)
{
	struct fx *f = *state;
	struct worker *w = add_worker(f, 10, WS_RUNNING);
	int status;

	close(f->peer[0]); /* the worker's end is gone (before the fork!) */
	f->peer[0] = -1;
	/* A real process, so pool_fail_worker()'s SIGKILL has a target. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(10); /* never outlive a failed test */
		pause();
		_exit(0);
	}
	w->pid = pid;

	dispatch_new(f);
	dispatch_new(f);
	dispatch_kick(&f->p);
	assert_true(w->broken);
	assert_int_equal(w->queued, 0);
	assert_int_equal(w->inflight, 0);
	assert_int_equal(w->handed, 0);
	/* Nothing lost: both wait in the queue, in order. */
	assert_int_equal(f->p.nqueued, 2);
	assert_int_equal(f->p.dropped, 0);
	assert_int_equal(queue_id(&f->p, 0), f->conn[0]->id);
	assert_int_equal(queue_id(&f->p, 1), f->conn[1]->id);
	assert_true(fd_is_open(f->fd[0]));
	assert_int_equal(dispatch_credit(w), 0);
	/* And the worker was killed. */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);

	/* A healthy worker then takes them. */
	struct proto_msg m;
	int fds[FDPASS_MAX];
	add_worker(f, 10, WS_RUNNING);
	dispatch_kick(&f->p);
	assert_int_equal(f->p.nqueued, 0);
	assert_int_equal(recv_msg(f->peer[1], &m, fds), 2);
	assert_int_equal(m.u.conn.conns[0].id, f->conn[0]->id);
	assert_int_equal(m.u.conn.conns[1].id, f->conn[1]->id);
	fdpass_close_all(fds, 2);
}

/* ---- listeners follow the program's credit ---- */

static void never(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	fail_msg("listener event fired");
}

/* A listener "web" on fd (which must never be readable) feeding the
 * program, paused as a new one is; unlink with unfake_listener. */
static void fake_listener(struct fx *f, struct listener *l, struct listener **ls, int fd)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->cfg.name, sizeof(l->cfg.name), "web");
	l->fd = fd;
	l->ev = event_new(batond.base, l->fd, EV_READ | EV_PERSIST, never, NULL);
	assert_non_null(l->ev);
	l->paused = 1;
	l->prog = &f->p;
	ls[0] = l;
	f->p.listeners = ls;
	f->p.nlisteners = 1;
}

static void unfake_listener(struct fx *f, struct listener *l)
{
	f->p.listeners = NULL;
	f->p.nlisteners = 0;
	event_free(l->ev);
}

static void test_listener_pause(void **state)
{
	struct fx *f = *state;
	struct listener l;
	struct listener *ls[1];
	struct proto_msg m;
	int fds[FDPASS_MAX];
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); /* the loop never runs */

	assert_true(sock >= 0);
	fake_listener(f, &l, ls, sock);

	/* No worker yet: stays paused. */
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 1);
	assert_false(event_pending(l.ev, EV_READ, NULL));

	struct worker *w = add_worker(f, 1, WS_RUNNING);
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 0);
	assert_true(event_pending(l.ev, EV_READ, NULL));

	dispatch_new(f); /* takes the only credit */
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 1);
	assert_false(event_pending(l.ev, EV_READ, NULL));
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 1);
	fdpass_close_all(fds, 1);
	uint64_t id = m.u.conn.conns[0].id;
	assert_int_equal(dispatch_ack(w, &id, 1), 0);
	assert_int_equal(dispatch_done(w, 1), 0);
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 0);

	/* Shutting down: paused whatever the credit. */
	batond.shutting_down = 1;
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 1);
	batond.shutting_down = 0;
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 0);

	unfake_listener(f, &l);
	close(sock);
}

/* ---- the ACK deadline ---- */

/* Run the loop for about ms milliseconds. */
static void run_loop_ms(int ms)
{
	struct timeval tv = {0, ms * 1000};
	event_base_loopexit(batond.base, &tv);
	event_base_dispatch(batond.base);
}

/* A worker that does not acknowledge within ack_timeout is failed; one
 * that acknowledges in time is not, and its timer follows the oldest
 * unacknowledged connection. */
static void test_ack_deadline(void **state)
{
	struct fx *f = *state;
	struct proto_msg m;
	int fds[FDPASS_MAX];

	f->p.cfg.ack_timeout = 300;
	struct worker *slow = add_worker(f, 8, WS_RUNNING);
	dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(slow->inflight, 1);
	assert_non_null(slow->ev_ack);
	assert_true(evtimer_pending(slow->ev_ack, NULL));
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 1);
	fdpass_close_all(fds, 1);
	run_loop_ms(20);
	assert_false(slow->broken); /* not yet due */
	run_loop_ms(400);
	assert_true(slow->broken); /* 420 ms > 300 ms: failed */

	/* Another worker acks each connection within the deadline: never failed. */
	struct worker *good = add_worker(f, 8, WS_RUNNING);
	for (int round = 0; round < 4; round++) {
		dispatch_new(f);
		dispatch_kick(&f->p);
		assert_int_equal(good->inflight, 1);
		assert_int_equal(recv_msg(f->peer[1], &m, fds), 1);
		fdpass_close_all(fds, 1);
		run_loop_ms(30);
		uint64_t id = m.u.conn.conns[0].id;
		assert_int_equal(dispatch_ack(good, &id, 1), 0);
		assert_int_equal(dispatch_done(good, 1), 0);
	}
	run_loop_ms(400); /* the timer fires with nothing unacknowledged */
	assert_false(good->broken);
	assert_false(evtimer_pending(good->ev_ack, NULL));

	/* 0 turns it off. */
	f->p.cfg.ack_timeout = 0;
	dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(recv_msg(f->peer[1], &m, fds), 1);
	fdpass_close_all(fds, 1);
	run_loop_ms(100);
	assert_false(good->broken);
	assert_false(evtimer_pending(good->ev_ack, NULL));
}

/* Hand every connection the worker was sent back: ACK them all, then DONE
 * `done` of them. */
static void ack_all_done(struct fx *f, struct worker *w, uint32_t done)
{
	struct proto_msg m;
	int fds[FDPASS_MAX], n;
	while ((n = recv_msg(f->peer[0], &m, fds)) > 0) {
		uint64_t ids[PROTO_CONN_MAX];
		for (int i = 0; i < n; i++)
			ids[i] = m.u.conn.conns[i].id;
		fdpass_close_all(fds, n);
		assert_int_equal(dispatch_ack(w, ids, (uint32_t)n), 0);
	}
	if (done)
		assert_int_equal(dispatch_done(w, done), 0);
}

/* Once starved, the listener resumes when half the capacity is free, not
 * at the first slot; or, if no more comes back, RESUME_DELAY_MS later. */
static void test_listener_hysteresis(void **state)
{
	struct fx *f = *state;
	struct listener l;
	struct listener *ls[1];
	int pipefd[2]; /* the loop runs: a pipe nobody writes is never readable */

	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	fake_listener(f, &l, ls, pipefd[0]);

	struct worker *w = add_worker(f, 8, WS_RUNNING);
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 0); /* never starved: the first slot will do */

	for (int i = 0; i < 8; i++)
		dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 1);
	assert_int_equal(l.pauses, 1);

	/* 1, then 3 slots back: still paused, the fallback timer armed */
	ack_all_done(f, w, 1);
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 1);
	assert_non_null(f->p.ev_resume);
	assert_true(evtimer_pending(f->p.ev_resume, NULL));
	ack_all_done(f, w, 2);
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 1);
	/* the 4th (half of 8): polling again, the timer off */
	ack_all_done(f, w, 1);
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 0);
	assert_true(event_pending(l.ev, EV_READ, NULL));
	assert_false(evtimer_pending(f->p.ev_resume, NULL));
	/* not starved any more: a slot short of half keeps it polling */
	dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 0);

	/* starved again; one slot comes back and no more: the timer resumes */
	for (int i = 0; i < 3; i++)
		dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 1);
	assert_int_equal(l.pauses, 2);
	ack_all_done(f, w, 1);
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 1);
	run_loop_ms(50);
	assert_int_equal(l.paused, 0);
	assert_true(event_pending(l.ev, EV_READ, NULL));

	/* the credit gone while the timer waits: it does not resume */
	dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(l.paused, 1);
	ack_all_done(f, w, 1);
	dispatch_kick(&f->p);
	assert_true(evtimer_pending(f->p.ev_resume, NULL));
	dispatch_new(f);
	dispatch_kick(&f->p);
	assert_false(evtimer_pending(f->p.ev_resume, NULL));
	run_loop_ms(20);
	assert_int_equal(l.paused, 1);
	assert_int_equal(l.pauses, 3);

	unfake_listener(f, &l);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* The worker sends one ACK for id. */
static void worker_acks(struct fx *f, int k, uint64_t id)
{
	struct proto_msg m = {.type = PROTO_ACK};
	uint8_t buf[PROTO_MSG_MAX];
	m.u.ids.count = 1;
	m.u.ids.ids[0] = id;
	int n = proto_encode(&m, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(send(f->peer[k], buf, (size_t)n, 0), n);
}

/* The messages of one read share one clock read, and the next ones read
 * the clock again: the handoff latency and the last message time follow
 * the clock, not a value left from an earlier read. */
static void test_read_clock(void **state)
{
	struct fx *f = *state;
	struct proto_msg m;
	int fds[FDPASS_MAX];
	struct worker *w = add_worker(f, 8, WS_RUNNING);

	dispatch_new(f);
	dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 2);
	fdpass_close_all(fds, 2);
	uint64_t before = now_ms();
	worker_acks(f, 0, m.u.conn.conns[0].id);
	worker_acks(f, 0, m.u.conn.conns[1].id);
	dispatch_read(w, -1);
	assert_int_equal(f->p.acked, 2);
	assert_int_equal(f->p.lat_count, 2);
	assert_true(w->last_msg_ms >= before && w->last_msg_ms <= now_ms());
	uint64_t sum = f->p.lat_sum_us;

	/* 30 ms later, read again, and acknowledged outside any read */
	int a = dispatch_new(f), b = dispatch_new(f);
	dispatch_kick(&f->p);
	assert_int_equal(recv_msg(f->peer[0], &m, fds), 2);
	fdpass_close_all(fds, 2);
	usleep(30000);
	worker_acks(f, 0, f->conn[a]->id);
	dispatch_read(w, -1);
	assert_true(w->last_msg_ms >= before + 30);
	assert_true(f->p.lat_sum_us - sum >= 30000);
	sum = f->p.lat_sum_us;
	usleep(30000);
	uint64_t id = f->conn[b]->id;
	assert_int_equal(dispatch_ack(w, &id, 1), 0);
	assert_true(f->p.lat_sum_us - sum >= 60000);
	assert_int_equal(f->p.lat_count, 4);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_conn_new),
		T(test_credit),
		T(test_pick),
		T(test_pick_fills_one_worker_a_wakeup),
		T(test_batch_one_message),
		T(test_batch_20),
		T(test_accounting),
		T(test_ack_batch_any_order),
		T(test_ack_bad_tail),
		T(test_queue_fifo),
		T(test_queue_no_worker),
		T(test_spread),
		T(test_reclaim),
		T(test_reclaim_front),
		T(test_queue_timeout),
		T(test_queue_timeout_each),
		T(test_queue_timeout_spares_dispatched),
		T(test_drop_queue),
		T(test_backpressure),
		T(test_send_failure),
		T(test_listener_pause),
		T(test_listener_hysteresis),
		T(test_read_clock),
		T(test_ack_deadline),
	};
	/* SIGPIPE would end the run if a send ever raced a close. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
