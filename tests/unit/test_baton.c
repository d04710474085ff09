/*
 * libbaton over a real SOCK_SEQPACKET socketpair: this test plays batond on
 * one end, libbaton works the other.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "baton.h"
#include "fdpass.h"
#include "proto.h"

struct fixture {
	int sup; /* the supervisor's end */
	int wrk; /* the worker's end, owned by the baton after open */
	struct baton *b;
	int nconns, ndrains;
	uint64_t ids[64];
	char listener[64], peer[64];
	int fds[64];
	int acked_before_cb; /* ACKs seen on sup when the conn callback ran */
	int done_in_cb;      /* call baton_done from the callback */
};

static struct fixture *F;

static void on_conn(struct baton *b, const struct baton_conn *c, void *arg)
{
	struct fixture *f = arg;
	uint8_t buf[PROTO_MSG_MAX];
	int fds[FDPASS_MAX], nfds;

	assert_ptr_equal(f, F);
	if (f->nconns == 0) {
		/* The ACK must already be on the wire. */
		ssize_t n = fdpass_recv(f->sup, buf, sizeof(buf), fds, &nfds);
		struct proto_msg m;
		if (n > 0 && proto_decode(PROTO_AT_SUPERVISOR, buf, n, nfds, &m) == PROTO_OK &&
		    m.type == PROTO_ACK)
			f->acked_before_cb = m.u.ids.count;
	}
	f->ids[f->nconns] = c->id;
	f->fds[f->nconns] = c->fd;
	snprintf(f->listener, sizeof(f->listener), "%s", c->listener);
	snprintf(f->peer, sizeof(f->peer), "%s", c->peer);
	f->nconns++;
	if (f->done_in_cb) {
		close(c->fd);
		assert_int_equal(baton_done(b, c->id), 0);
	}
}

static void on_drain(struct baton *b, void *arg)
{
	struct fixture *f = arg;
	assert_true(baton_draining(b));
	f->ndrains++;
}

static const struct baton_callbacks cbs = {.conn = on_conn, .drain = on_drain};

static int setup(void **state)
{
	int sv[2];
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	f->sup = sv[0];
	f->wrk = sv[1];
	assert_int_equal(fcntl(f->wrk, F_SETFL, O_NONBLOCK), 0);
	f->b = baton_open(f->wrk, &cbs, f);
	assert_non_null(f->b);
	F = f;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < f->nconns; i++)
		if (!f->done_in_cb)
			close(f->fds[i]);
	baton_free(f->b);
	close(f->sup);
	free(f);
	return 0;
}

/* Receive one message on the supervisor end; fails the test otherwise. */
static void sup_recv(struct fixture *f, struct proto_msg *m)
{
	uint8_t buf[PROTO_MSG_MAX];
	int fds[FDPASS_MAX], nfds = 0;
	struct pollfd p = {.fd = f->sup, .events = POLLIN};

	assert_int_equal(poll(&p, 1, 2000), 1);
	ssize_t n = fdpass_recv(f->sup, buf, sizeof(buf), fds, &nfds);
	assert_true(n > 0);
	assert_int_equal(nfds, 0);
	assert_int_equal(proto_decode(PROTO_AT_SUPERVISOR, buf, n, 0, m), PROTO_OK);
}

static int sup_pending(struct fixture *f)
{
	struct pollfd p = {.fd = f->sup, .events = POLLIN};
	return poll(&p, 1, 0);
}

static void sup_send(struct fixture *f, const struct proto_msg *m, const int *fds, int nfds)
{
	uint8_t buf[PROTO_MSG_MAX];
	int len = proto_encode(m, buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal(fdpass_send(f->sup, buf, len, fds, nfds), 0);
}

/* Send a CONN of n fresh pipe read ends with ids first..first+n-1. */
static void send_conns(struct fixture *f, uint64_t first, int n, int *write_ends)
{
	struct proto_msg m = {.type = PROTO_CONN};
	int fds[PROTO_CONN_MAX];

	m.u.conn.count = n;
	for (int i = 0; i < n; i++) {
		int p[2];
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		fds[i] = p[0];
		if (write_ends)
			write_ends[i] = p[1];
		else
			close(p[1]);
		m.u.conn.conns[i].id = first + i;
		strcpy(m.u.conn.conns[i].listener, "web");
		strcpy(m.u.conn.conns[i].peer, "127.0.0.1:4242");
	}
	sup_send(f, &m, fds, n);
	for (int i = 0; i < n; i++)
		close(fds[i]); /* the worker holds its own copies now */
}

static void test_open_needs_channel(void **state)
{
	(void)state;
	unsetenv("BATON_FD");
	errno = 0;
	assert_null(baton_open(-1, &cbs, NULL));
	assert_int_equal(errno, ENOENT);
	setenv("BATON_FD", "3x", 1);
	assert_null(baton_open(-1, &cbs, NULL));
	assert_int_equal(errno, EINVAL);
	setenv("BATON_FD", "-1", 1);
	assert_null(baton_open(-1, &cbs, NULL));
	assert_int_equal(errno, EINVAL);
	unsetenv("BATON_FD");
	struct baton_callbacks none = {0};
	assert_null(baton_open(5, &none, NULL));
	assert_int_equal(errno, EINVAL);
}

static void test_env(void **state)
{
	(void)state;
	setenv("BATON_PROGRAM", "web", 1);
	setenv("BATON_WORKER", "3", 1);
	setenv("BATON_GENERATION", "junk", 1);
	assert_string_equal(baton_program(), "web");
	assert_int_equal(baton_worker_slot(), 3);
	assert_int_equal(baton_generation(), -1);
	unsetenv("BATON_WORKER");
	assert_int_equal(baton_worker_slot(), -1);
}

static void test_ready(void **state)
{
	struct fixture *f = *state;
	struct proto_msg m;

	assert_int_equal(baton_ready(f->b, 7), 0);
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_READY);
	assert_int_equal(m.u.ready.capacity, 7);
}

/* A worker never promises more connections than its fd limit can hold. */
static void test_ready_capped_by_fd_limit(void **state)
{
	struct fixture *f = *state;
	struct proto_msg m;
	struct rlimit saved, low;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = 100;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(baton_fd_capacity(0), 100 - BATON_FD_RESERVE);
	assert_int_equal(baton_fd_capacity(50), 50);
	assert_int_equal(baton_fd_capacity(5000), 100 - BATON_FD_RESERVE);
	assert_int_equal(baton_ready(f->b, 0), 0);
	low.rlim_cur = 40; /* below twice the reserve: half of it */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(baton_fd_capacity(0), 20);
	assert_int_equal(baton_fd_capacity(7), 7);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_READY);
	assert_int_equal(m.u.ready.capacity, 100 - BATON_FD_RESERVE);
}

static void test_conn_acked_before_callback(void **state)
{
	struct fixture *f = *state;
	struct proto_msg m;

	send_conns(f, 100, 3, NULL);
	assert_int_equal(baton_process(f->b), 0);
	assert_int_equal(f->nconns, 3);
	assert_int_equal(f->acked_before_cb, 3); /* one ACK for the batch */
	assert_int_equal(f->ids[0], 100);
	assert_int_equal(f->ids[2], 102);
	assert_string_equal(f->listener, "web");
	assert_string_equal(f->peer, "127.0.0.1:4242");
	for (int i = 0; i < 3; i++)
		assert_true(fcntl(f->fds[i], F_GETFD) & FD_CLOEXEC);
	assert_int_equal(baton_active(f->b), 3);
	assert_int_equal(sup_pending(f), 0); /* nothing more was sent */

	assert_int_equal(baton_done(f->b, 101), 0);
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_DONE);
	assert_int_equal(m.u.ids.count, 1);
	assert_int_equal(m.u.ids.ids[0], 101);
	assert_int_equal(baton_active(f->b), 2);
}

static void test_done_without_conn_is_refused(void **state)
{
	struct fixture *f = *state;

	errno = 0;
	assert_int_equal(baton_done(f->b, 1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sup_pending(f), 0);
}

static void test_status_answers_heartbeat(void **state)
{
	struct fixture *f = *state;
	struct proto_msg m = {.type = PROTO_STATUS};

	assert_int_equal(baton_ready(f->b, 9), 0);
	sup_recv(f, &m);
	send_conns(f, 1, 2, NULL);
	assert_int_equal(baton_process(f->b), 0);
	assert_int_equal(f->acked_before_cb, 2); /* on_conn took the ACK */
	m.type = PROTO_STATUS;
	sup_send(f, &m, NULL, 0);
	assert_int_equal(baton_process(f->b), 0);
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_HEARTBEAT);
	assert_int_equal(m.u.heartbeat.active, 2);
	assert_int_equal(m.u.heartbeat.capacity, 9);
}

static void test_drain(void **state)
{
	struct fixture *f = *state;
	struct proto_msg m = {.type = PROTO_DRAIN};

	assert_false(baton_draining(f->b));
	sup_send(f, &m, NULL, 0);
	assert_int_equal(baton_process(f->b), 0);
	assert_true(baton_draining(f->b));
	assert_int_equal(f->ndrains, 1);
	/* The channel still works while draining: DONE and heartbeats go out. */
	assert_int_equal(baton_heartbeat(f->b), 0);
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_HEARTBEAT);
	/* A second DRAIN does not call the callback again. */
	m.type = PROTO_DRAIN;
	sup_send(f, &m, NULL, 0);
	assert_int_equal(baton_process(f->b), 0);
	assert_int_equal(f->ndrains, 1);
}

static void test_eof_drains(void **state)
{
	struct fixture *f = *state;

	close(f->sup);
	f->sup = open("/dev/null", O_RDONLY | O_CLOEXEC); /* for teardown */
	assert_int_equal(baton_process(f->b), -1);
	assert_true(baton_draining(f->b));
	assert_int_equal(f->ndrains, 1);
	assert_int_equal(baton_heartbeat(f->b), -1);
	assert_int_equal(errno, EPIPE);
}

static void test_malformed_closes_fds_and_drains(void **state)
{
	struct fixture *f = *state;
	struct proto_msg m = {.type = PROTO_DRAIN};
	uint8_t buf[PROTO_MSG_MAX];
	int p[2];

	signal(SIGPIPE, SIG_IGN);
	/* A DRAIN carrying an fd is malformed: the fd must not leak. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	int len = proto_encode(&m, buf, sizeof(buf));
	assert_int_equal(fdpass_send(f->sup, buf, len, &p[0], 1), 0);
	close(p[0]);
	assert_int_equal(baton_process(f->b), -1);
	assert_true(baton_draining(f->b));
	assert_int_equal(f->ndrains, 1);
	assert_int_equal(f->nconns, 0);
	/* Every read end is closed, so the pipe is broken. */
	assert_int_equal(write(p[1], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(p[1]);
	/* The worker stops talking on a broken channel. */
	assert_int_equal(baton_heartbeat(f->b), -1);
	assert_int_equal(sup_pending(f), 0);
}

static void test_garbage_record(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(send(f->sup, "garbage!garbage!", 16, 0), 16);
	assert_int_equal(baton_process(f->b), -1);
	assert_true(baton_draining(f->b));
	assert_int_equal(f->ndrains, 1);
}

/* Acks that cannot be sent now are kept and sent in order later. */
static void test_full_channel_keeps_acks(void **state)
{
	struct fixture *f = *state;
	struct proto_msg m;
	int sent = 0;

	/* Fill the worker->supervisor direction with heartbeats. */
	for (int i = 0; i < 100000; i++) {
		struct pollfd p = {.fd = f->wrk, .events = POLLOUT};
		if (poll(&p, 1, 0) == 0)
			break;
		assert_int_equal(baton_heartbeat(f->b), 0);
		sent++;
	}
	struct pollfd p = {.fd = f->wrk, .events = POLLOUT};
	assert_int_equal(poll(&p, 1, 0), 0); /* really full */

	send_conns(f, 500, 2, NULL);
	assert_int_equal(baton_process(f->b), 0);
	assert_int_equal(f->nconns, 2); /* served even though not yet acked */
	assert_int_equal(baton_done(f->b, 500), 0); /* queued behind the ACK */

	/* Read everything; the ACK then the DONE must follow the heartbeats. */
	int heartbeats = 0, ack = 0, done = 0;
	for (int i = 0; i < sent + 10 && !done; i++) {
		if (!sup_pending(f))
			assert_int_equal(baton_process(f->b), 0); /* flushes */
		sup_recv(f, &m);
		if (m.type == PROTO_HEARTBEAT) {
			assert_int_equal(ack, 0);
			heartbeats++;
		} else if (m.type == PROTO_ACK) {
			assert_int_equal(m.u.ids.count, 2);
			assert_int_equal(m.u.ids.ids[0], 500);
			assert_int_equal(m.u.ids.ids[1], 501);
			ack = 1;
		} else {
			assert_int_equal(m.type, PROTO_DONE);
			assert_int_equal(ack, 1);
			assert_int_equal(m.u.ids.ids[0], 500);
			done = 1;
		}
	}
	/* f->acked_before_cb could not see it: the ACK was queued. */
	assert_true(heartbeats >= sent - 1);
	assert_int_equal(ack, 1);
	assert_int_equal(done, 1);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(int *)arg = 1;
}

static void on_conn_close(struct baton *b, const struct baton_conn *c, void *arg)
{
	(void)arg;
	close(c->fd);
	baton_done(b, c->id);
}

/* libevent mode without a drain callback: the loop ends once drained. */
static void test_libevent_drain_ends_loop(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	const struct baton_callbacks cb = {.conn = on_conn_close};
	struct proto_msg m;
	int timed_out = 0;

	assert_non_null(base);
	baton_free(f->b);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	close(f->sup);
	f->sup = sv[0];
	f->wrk = sv[1];
	f->b = baton_open(f->wrk, &cb, NULL);
	assert_int_equal(baton_attach(f->b, base), 0);
	assert_int_equal(baton_attach(f->b, base), -1); /* only once */

	send_conns(f, 7, 1, NULL);
	m.type = PROTO_DRAIN;
	sup_send(f, &m, NULL, 0);
	struct event *deadline = evtimer_new(base, on_deadline, &timed_out);
	struct timeval tv = {5, 0};
	evtimer_add(deadline, &tv);
	event_base_dispatch(base);
	assert_int_equal(timed_out, 0);
	assert_true(baton_draining(f->b));
	assert_int_equal(baton_active(f->b), 0);
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_ACK);
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_DONE);
	assert_int_equal(m.u.ids.ids[0], 7);
	event_free(deadline);
	baton_free(f->b);
	f->b = NULL;
	event_base_free(base);
	f->b = baton_open(open("/dev/null", O_RDONLY | O_CLOEXEC), &cbs, f);
}

/* libevent mode sends a heartbeat every second on its own. */
static void test_libevent_heartbeat(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct proto_msg m;
	int timed_out = 0;

	assert_int_equal(baton_attach(f->b, base), 0);
	assert_int_equal(baton_ready(f->b, 3), 0);
	struct event *deadline = evtimer_new(base, on_deadline, &timed_out);
	struct timeval tv = {1, 300000};
	evtimer_add(deadline, &tv);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_READY);
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_HEARTBEAT);
	assert_int_equal(m.u.heartbeat.capacity, 3);
	event_free(deadline);
	baton_free(f->b);
	f->b = baton_open(open("/dev/null", O_RDONLY | O_CLOEXEC), &cbs, f);
	event_base_free(base);
}

/* libevent mode: the connections that end in one loop iteration go back in
 * one DONE; a DONE still waiting when the baton is freed is sent then. */
static void test_libevent_dones_coalesced(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct proto_msg m;

	assert_non_null(base);
	assert_int_equal(baton_attach(f->b, base), 0);
	f->done_in_cb = 1;
	send_conns(f, 20, 3, NULL);
	send_conns(f, 23, 2, NULL);
	struct timeval tv = {0, 200000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	assert_int_equal(f->nconns, 5);
	assert_int_equal(f->acked_before_cb, 3); /* read by on_conn: the first ACK */
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_ACK); /* the second CONN's */
	assert_int_equal(m.u.ids.count, 2);
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_DONE);
	assert_int_equal(m.u.ids.count, 5); /* one message for the five */
	for (int i = 0; i < 5; i++)
		assert_int_equal(m.u.ids.ids[i], 20 + i);
	assert_int_equal(sup_pending(f), 0);

	/* A DONE outside the loop waits for it, or for baton_free. */
	f->done_in_cb = 0;
	send_conns(f, 30, 1, NULL);
	assert_int_equal(baton_process(f->b), 0);
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_ACK);
	close(f->fds[5]);
	assert_int_equal(baton_done(f->b, 30), 0);
	assert_int_equal(sup_pending(f), 0); /* not yet */
	f->nconns = 0;                       /* its fd is closed: teardown leaves it */
	baton_free(f->b);
	sup_recv(f, &m);
	assert_int_equal(m.type, PROTO_DONE);
	assert_int_equal(m.u.ids.count, 1);
	assert_int_equal(m.u.ids.ids[0], 30);
	event_base_free(base);
	f->b = baton_open(open("/dev/null", O_RDONLY | O_CLOEXEC), &cbs, f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_needs_channel),
		cmocka_unit_test(test_env),
		cmocka_unit_test_setup_teardown(test_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ready_capped_by_fd_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_acked_before_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_done_without_conn_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_answers_heartbeat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_drains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_closes_fds_and_drains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_channel_keeps_acks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_libevent_drain_ends_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_libevent_heartbeat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_libevent_dones_coalesced, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
