/*
 * libbaton: the worker side of the protocol in worker/PROTOCOL.md.
 *
 * Outgoing messages are never dropped: ids to acknowledge and ids that are
 * done wait in two lists until the channel takes them, acks always first
 * (the supervisor counts a connection as the worker's only once acked, so a
 * DONE must never overtake its ACK).  READY and HEARTBEAT are flags.
 *
 * In libevent mode a DONE is not sent at once: baton_done() makes a flush
 * event active, which runs after the other callbacks of this loop
 * iteration, so the connections that end in one wakeup go back to batond
 * in one message (and batond reads one message, not one per connection).
 */
#include "baton.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fdpass.h"
#include "proto.h"

#define HEARTBEAT_SEC 1

struct idlist {
	uint64_t *ids;
	size_t n, cap;
};

struct baton {
	int fd;
	struct baton_callbacks cb;
	void *arg;

	uint32_t active;
	uint32_t capacity;
	int ready_pending;
	int heartbeat_pending;
	int draining;
	int drain_called;
	int closed; /* channel gone or broken: read nothing, send nothing */
	struct idlist acks, dones;

	struct event_base *base;
	struct event *ev_read, *ev_write, *ev_heartbeat;
	struct event *ev_flush; /* active when dones wait for the end of the iteration */
	int flush_queued;
};

static int idlist_push(struct idlist *l, uint64_t id)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		uint64_t *ids = realloc(l->ids, cap * sizeof(*ids));
		if (!ids)
			return -1;
		l->ids = ids;
		l->cap = cap;
	}
	l->ids[l->n++] = id;
	return 0;
}

static void idlist_drop(struct idlist *l, size_t k)
{
	memmove(l->ids, l->ids + k, (l->n - k) * sizeof(*l->ids));
	l->n -= k;
}

static void channel_lost(struct baton *b, const char *why);

/* Send one encoded message; 1 sent, 0 would block, -1 channel lost. */
static int send_msg(struct baton *b, const struct proto_msg *m)
{
	uint8_t buf[PROTO_MSG_MAX];
	int len = proto_encode(m, buf, sizeof(buf));

	if (len < 0)
		abort(); /* we built it: a bug, not an input */
	if (fdpass_send(b->fd, buf, (size_t)len, NULL, 0) == 0)
		return 1;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
		return 0;
	channel_lost(b, strerror(errno));
	return -1;
}

/* Send ids from l in messages of up to PROTO_IDS_MAX; 1 all sent. */
static int flush_ids(struct baton *b, struct idlist *l, uint16_t type)
{
	struct proto_msg m = {.type = type};

	while (l->n) {
		size_t k = l->n < PROTO_IDS_MAX ? l->n : PROTO_IDS_MAX;
		m.u.ids.count = (uint16_t)k;
		memcpy(m.u.ids.ids, l->ids, k * sizeof(*l->ids));
		int r = send_msg(b, &m);
		if (r <= 0)
			return r;
		idlist_drop(l, k);
	}
	return 1;
}

/*
 * Send what is pending; arms EV_WRITE in libevent mode if blocked.  all 0:
 * READY and ACKs only, when the flush event is queued to send the rest at
 * the end of the loop iteration (so DONEs gather there).
 */
static void flush_to(struct baton *b, int all)
{
	int r = 1;

	if (b->closed)
		return;
	if (b->ready_pending) {
		struct proto_msg m = {.type = PROTO_READY};
		m.u.ready.capacity = b->capacity;
		r = send_msg(b, &m);
		if (r > 0)
			b->ready_pending = 0;
	}
	if (r > 0)
		r = flush_ids(b, &b->acks, PROTO_ACK);
	if (r > 0 && all)
		r = flush_ids(b, &b->dones, PROTO_DONE);
	if (r > 0 && all && b->heartbeat_pending) {
		struct proto_msg m = {.type = PROTO_HEARTBEAT};
		m.u.heartbeat.active = b->active;
		m.u.heartbeat.capacity = b->capacity;
		r = send_msg(b, &m);
		if (r > 0)
			b->heartbeat_pending = 0;
	}
	if (b->ev_write && !b->closed) {
		if (r == 0)
			event_add(b->ev_write, NULL);
		else if (all)
			event_del(b->ev_write);
	}
}

static void flush(struct baton *b)
{
	flush_to(b, 1);
}

/* Draining and idle without a drain callback: the libevent loop ends. */
static void maybe_finish(struct baton *b)
{
	if (b->draining && b->active == 0 && !b->cb.drain && b->base) {
		flush(b); /* the last DONEs go before the loop ends */
		event_base_loopexit(b->base, NULL);
	}
}

static void start_drain(struct baton *b)
{
	b->draining = 1;
	if (b->ev_heartbeat && b->closed)
		event_del(b->ev_heartbeat);
	if (b->cb.drain && !b->drain_called) {
		b->drain_called = 1;
		b->cb.drain(b, b->arg);
	}
	maybe_finish(b);
}

static void channel_lost(struct baton *b, const char *why)
{
	if (b->closed)
		return;
	b->closed = 1;
	if (b->ev_read)
		event_del(b->ev_read);
	if (b->ev_write)
		event_del(b->ev_write);
	if (why)
		fprintf(stderr, "libbaton: channel to batond lost: %s\n", why);
	start_drain(b);
}

static void handle(struct baton *b, const struct proto_msg *m, int *fds)
{
	switch (m->type) {
	case PROTO_CONN: {
		int n = m->u.conn.count;
		/* Acknowledge first: from here on these are ours. */
		for (int i = 0; i < n; i++)
			if (idlist_push(&b->acks, m->u.conn.conns[i].id) < 0) {
				/* Unacked, the supervisor re-dispatches them. */
				fdpass_close_all(fds + i, n - i);
				n = i;
				break;
			}
		b->active += (uint32_t)n;
		flush_to(b, !b->flush_queued);
		for (int i = 0; i < n; i++) {
			struct baton_conn c = {
				.fd = fds[i],
				.id = m->u.conn.conns[i].id,
				.listener = m->u.conn.conns[i].listener,
				.peer = m->u.conn.conns[i].peer,
			};
			b->cb.conn(b, &c, b->arg);
		}
		break;
	}
	case PROTO_DRAIN:
		start_drain(b);
		break;
	case PROTO_STATUS:
		b->heartbeat_pending = 1;
		flush(b);
		break;
	}
}

int baton_process(struct baton *b)
{
	uint8_t buf[PROTO_MSG_MAX];
	int fds[FDPASS_MAX];
	struct proto_msg m;

	flush(b);
	while (!b->closed) {
		int nfds = 0;
		ssize_t len = fdpass_recv(b->fd, buf, sizeof(buf), fds, &nfds);
		if (len < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return 0;
			channel_lost(b, errno == ECONNRESET ? NULL : strerror(errno));
			break;
		}
		enum proto_err err =
			proto_decode(PROTO_AT_WORKER, buf, (size_t)len, nfds, &m);
		if (err != PROTO_OK) {
			char why[128];
			fdpass_close_all(fds, nfds);
			snprintf(why, sizeof(why), "malformed message: %s",
				 proto_strerror(err));
			channel_lost(b, why);
			break;
		}
		handle(b, &m, fds);
	}
	errno = EPIPE;
	return -1;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	baton_process(arg);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush(arg);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct baton *b = arg;
	(void)fd;
	(void)what;
	b->flush_queued = 0;
	flush(b);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	baton_heartbeat(arg);
}

struct baton *baton_open(int fd, const struct baton_callbacks *cb, void *arg)
{
	if (!cb || !cb->conn) {
		errno = EINVAL;
		return NULL;
	}
	if (fd < 0) {
		const char *s = getenv("BATON_FD");
		char *end;
		long v;
		if (!s || !*s) {
			errno = ENOENT;
			return NULL;
		}
		errno = 0;
		v = strtol(s, &end, 10);
		if (errno || *end || v < 0 || v > 65535) {
			errno = EINVAL;
			return NULL;
		}
		fd = (int)v;
	}
	struct baton *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->fd = fd;
	b->cb = *cb;
	b->arg = arg;
	return b;
}

void baton_free(struct baton *b)
{
	if (!b)
		return;
	flush(b); /* dones still waiting for the flush event */
	if (b->ev_flush)
		event_free(b->ev_flush);
	if (b->ev_read)
		event_free(b->ev_read);
	if (b->ev_write)
		event_free(b->ev_write);
	if (b->ev_heartbeat)
		event_free(b->ev_heartbeat);
	free(b->acks.ids);
	free(b->dones.ids);
	close(b->fd);
	free(b);
}

int baton_attach(struct baton *b, struct event_base *base)
{
	struct timeval hb = {HEARTBEAT_SEC, 0};

	if (b->base) {
		errno = EBUSY;
		return -1;
	}
	b->base = base;
	b->ev_read = event_new(base, b->fd, EV_READ | EV_PERSIST, on_read, b);
	b->ev_write = event_new(base, b->fd, EV_WRITE, on_write, b);
	b->ev_heartbeat = event_new(base, -1, EV_PERSIST, on_heartbeat, b);
	b->ev_flush = event_new(base, -1, 0, on_flush, b);
	if (!b->ev_read || !b->ev_write || !b->ev_heartbeat || !b->ev_flush ||
	    event_add(b->ev_read, NULL) < 0 ||
	    event_add(b->ev_heartbeat, &hb) < 0) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

uint32_t baton_fd_capacity(uint32_t capacity)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return capacity;
	uint64_t cap = rl.rlim_cur > 2 * BATON_FD_RESERVE ? rl.rlim_cur - BATON_FD_RESERVE
							 : rl.rlim_cur / 2;
	if (cap < 1)
		cap = 1;
	return capacity && capacity < cap ? capacity : (uint32_t)(cap < UINT32_MAX ? cap : UINT32_MAX);
}

int baton_ready(struct baton *b, uint32_t capacity)
{
	if (b->closed) {
		errno = EPIPE;
		return -1;
	}
	/*
	 * Every connection is an fd here: a worker promised more than its fd
	 * limit allows would get CONNs whose fds the kernel cannot install
	 * (MSG_CTRUNC) and lose its channel.  Announce what fits instead; the
	 * supervisor then keeps further clients in its backlog.
	 */
	b->capacity = baton_fd_capacity(capacity);
	b->ready_pending = 1;
	flush(b);
	return b->closed ? -1 : 0;
}

int baton_done(struct baton *b, uint64_t id)
{
	if (b->active == 0) {
		errno = EINVAL;
		return -1;
	}
	b->active--;
	if (!b->closed && idlist_push(&b->dones, id) < 0)
		return -1;
	if (b->ev_flush && !b->closed) {
		if (!b->flush_queued) {
			b->flush_queued = 1;
			event_active(b->ev_flush, EV_TIMEOUT, 0);
		}
	} else {
		flush(b);
	}
	maybe_finish(b);
	return 0;
}

int baton_heartbeat(struct baton *b)
{
	if (b->closed) {
		errno = EPIPE;
		return -1;
	}
	b->heartbeat_pending = 1;
	flush(b);
	return b->closed ? -1 : 0;
}

uint32_t baton_active(const struct baton *b)
{
	return b->active;
}

int baton_draining(const struct baton *b)
{
	return b->draining;
}

int baton_fd(const struct baton *b)
{
	return b->fd;
}

const char *baton_program(void)
{
	return getenv("BATON_PROGRAM");
}

static int env_int(const char *name)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > 0x7fffffff)
		return -1;
	return (int)v;
}

int baton_worker_slot(void)
{
	return env_int("BATON_WORKER");
}

int baton_generation(void)
{
	return env_int("BATON_GENERATION");
}
