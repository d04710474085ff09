/*
 * libFuzzer target for the worker protocol: common/proto.c and
 * common/fdpass.c.
 *
 * Input: two control bytes, then the message.
 *
 *	byte 0	bits 0-4: an fd count (0..31); bit 5: receive on a socket
 *		with SO_PASSCRED, so a SCM_CREDENTIALS message comes along
 *	byte 1	receive buffer size: 0 = PROTO_MSG_MAX (as libbaton),
 *		0x80|n = n bytes, else message length + byte - 64
 *	rest	the message bytes
 *
 * Three checks per input:
 *  (a) proto_decode() of the bytes on both sides with the fd count taken
 *      from byte 0; what decodes must encode back to the same bytes;
 *  (b) the bytes sent through a real SOCK_SEQPACKET socketpair with that
 *      many /dev/null fds attached (fdpass_send(), or sendmsg() for more
 *      than FDPASS_MAX, which provokes MSG_CTRUNC; a short buffer gives
 *      MSG_TRUNC), received with fdpass_recv() and decoded; afterwards no
 *      fd may be left open;
 *  (c) the bytes as a struct proto_msg: what encodes must decode back to
 *      the same message.
 * A broken invariant calls abort(), which libFuzzer reports as a crash.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ATTACH_MAX (FDPASS_MAX + 4) /* fds one input may attach */
#define LEAK_WINDOW (ATTACH_MAX + 8) /* fds above the baseline that must be free */
_Static_assert(LEAK_WINDOW <= 64, "S.busy holds LEAK_WINDOW bits");
#define PROC_EVERY 512               /* iterations between /proc/self/fd counts */

static struct {
	int init;
	int plain[2];   /* [0] sends, [1] receives */
	int cred[2];    /* the same, [1] with SO_PASSCRED */
	int devnull;    /* dup'ed to make the attached fds */
	int base;       /* lowest free fd after setup */
	uint64_t busy;  /* fds base + i open at setup (inherited ones) */
	int proc_count; /* /proc/self/fd entries after setup, -1 until known */
	unsigned long iter;
} S;

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "fuzz_proto: %s:%d: check failed: %s\n", \
				__FILE__, __LINE__, #cond);                   \
			abort();                                              \
		}                                                             \
	} while (0)

static int count_proc_fds(void)
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

static void setup(void)
{
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, S.plain) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, S.cred) == 0);
	int on = 1;
	CHECK(setsockopt(S.cred[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == 0);
	S.devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(S.devnull >= 0);
	/* The kernel gives out the lowest free number, so a leaked fd lands
	 * at or above base (unless something else closed a lower one: the
	 * /proc count catches that case).  An fd inherited from the parent
	 * may sit above base: those are noted and skipped. */
	S.base = dup(S.devnull);
	CHECK(S.base >= 0);
	close(S.base);
	for (int i = 0; i < LEAK_WINDOW; i++)
		if (fcntl(S.base + i, F_GETFD) >= 0)
			S.busy |= 1ull << i;
	S.proc_count = -1;
	S.init = 1;
}

static void check_no_leak(void)
{
	for (int fd = S.base; fd < S.base + LEAK_WINDOW; fd++)
		if (!(S.busy >> (fd - S.base) & 1) && fcntl(fd, F_GETFD) >= 0) {
			char link[64], target[256] = "?";
			snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
			ssize_t n = readlink(link, target, sizeof(target) - 1);
			target[n > 0 ? n : 1] = '\0';
			fprintf(stderr, "fuzz_proto: fd %d (%s) leaked (baseline %d)\n", fd,
				target, S.base);
			abort();
		}
	if (S.iter++ % PROC_EVERY == 0) {
		int n = count_proc_fds();
		if (S.proc_count < 0)
			S.proc_count = n;
		else if (n != S.proc_count) {
			fprintf(stderr, "fuzz_proto: %d fds open, %d at start\n", n,
				S.proc_count);
			abort();
		}
	}
}

/* What decodes must encode to the very same bytes, and decode again. */
static void check_decoded(enum proto_side side, const uint8_t *buf, size_t len,
			  int nfds, const struct proto_msg *m)
{
	uint8_t out[PROTO_MSG_MAX];
	struct proto_msg again;

	CHECK(proto_nfds(m) == nfds);
	CHECK(strcmp(proto_name(m->type), "UNKNOWN") != 0);
	CHECK(side == PROTO_AT_WORKER ? m->type < 100 : m->type >= 100);
	CHECK(len <= PROTO_MSG_MAX);
	if (m->type == PROTO_CONN)
		for (int i = 0; i < m->u.conn.count; i++) {
			CHECK(memchr(m->u.conn.conns[i].listener, 0, PROTO_LISTENER_MAX));
			CHECK(memchr(m->u.conn.conns[i].peer, 0, PROTO_PEER_MAX));
		}
	int n = proto_encode(m, out, sizeof(out));
	CHECK(n >= 0 && (size_t)n == len);
	CHECK(memcmp(out, buf, len) == 0);
	CHECK(proto_decode(side, out, (size_t)n, nfds, &again) == PROTO_OK);
	CHECK(memcmp(&again, m, sizeof(again)) == 0);
}

static void check_error(enum proto_err e)
{
	CHECK(e >= PROTO_OK && e <= PROTO_ETRUNC);
	CHECK(strcmp(proto_strerror(e), "unknown error") != 0);
}

/* (a) The raw bytes, as each side would see them with nfds fds. */
static void decode_raw(const uint8_t *msg, size_t len, int nfds)
{
	static const enum proto_side sides[] = {PROTO_AT_WORKER, PROTO_AT_SUPERVISOR};
	/* An exact-size heap copy, so ASan sees any read past the end. */
	uint8_t *copy = malloc(len ? len : 1);
	CHECK(copy);
	if (len)
		memcpy(copy, msg, len);
	for (size_t s = 0; s < 2; s++) {
		struct proto_msg m;
		enum proto_err e = proto_decode(sides[s], copy, len, nfds, &m);
		check_error(e);
		if (e == PROTO_OK)
			check_decoded(sides[s], copy, len, nfds, &m);
	}
	free(copy);
}

/* (b) Through the socketpair, as batond and libbaton receive. */
static void through_socket(const uint8_t *msg, size_t len, int nattach,
			   int passcred, size_t bufsize)
{
	int *sv = passcred ? S.cred : S.plain;
	int out[ATTACH_MAX], in[FDPASS_MAX];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * ATTACH_MAX)];
	} ctl;
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	CHECK(nattach >= 0 && nattach <= ATTACH_MAX);
	for (int i = 0; i < nattach; i++)
		CHECK((out[i] = fcntl(S.devnull, F_DUPFD_CLOEXEC, 0)) >= 0);
	if (nattach > FDPASS_MAX) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nattach);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nattach);
		memcpy(CMSG_DATA(c), out, sizeof(int) * nattach);
	}
	/* fdpass_send() as batond does; past FDPASS_MAX it refuses, and a
	 * broken peer could still send that many, so sendmsg() does it. */
	ssize_t sent;
	if (nattach <= FDPASS_MAX) {
		sent = fdpass_send(sv[0], msg, len, out, nattach) == 0 ? (ssize_t)len : -1;
	} else {
		CHECK(fdpass_send(sv[0], msg, len, out, nattach) < 0 && errno == EINVAL);
		sent = sendmsg(sv[0], &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	int send_errno = errno;
	/* The kernel holds its own references while the record is queued. */
	for (int i = 0; i < nattach; i++)
		close(out[i]);
	if (sent < 0) {
		/* Only a record larger than the socket buffer may be refused. */
		if (send_errno != EMSGSIZE) {
			fprintf(stderr, "fuzz_proto: sendmsg: %s\n", strerror(send_errno));
			abort();
		}
	} else {
		CHECK((size_t)sent == len);
	}

	uint8_t *buf = malloc(bufsize ? bufsize : 1);
	CHECK(buf);
	for (size_t i = 0; i < FDPASS_MAX; i++)
		in[i] = -1;
	int nfds = -1;
	errno = 0;
	ssize_t n = fdpass_recv(sv[1], buf, bufsize, in, &nfds);
	if (n < 0) {
		int e = errno;
		CHECK(nfds == 0); /* every fd closed on every error path */
		if (sent < 0)
			CHECK(e == EAGAIN);
		else if (len > bufsize)
			CHECK(e == EMSGSIZE); /* MSG_TRUNC */
		else if (nattach > FDPASS_MAX)
			CHECK(e == EMSGSIZE); /* MSG_CTRUNC */
		else if (passcred) /* SCM_CREDENTIALS, which can crowd out fds */
			CHECK(e == EBADMSG || (e == EMSGSIZE && nattach > 0));
		else
			CHECK(e == ECONNRESET && len == 0 && nattach == 0);
	} else {
		CHECK(sent >= 0 && (size_t)n == len && len <= bufsize);
		CHECK(nfds == nattach && !passcred);
		for (int i = 0; i < nfds; i++) {
			int fl = fcntl(in[i], F_GETFD);
			CHECK(fl >= 0 && (fl & FD_CLOEXEC));
		}
		struct proto_msg m;
		/* As libbaton: a CONN carries its connections. */
		enum proto_err e = proto_decode(PROTO_AT_WORKER, buf, (size_t)n, nfds, &m);
		check_error(e);
		if (e == PROTO_OK)
			check_decoded(PROTO_AT_WORKER, buf, (size_t)n, nfds, &m);
		/* As batond: workers never send fds. */
		e = proto_decode(PROTO_AT_SUPERVISOR, buf, (size_t)n, nfds, &m);
		check_error(e);
		if (e == PROTO_OK)
			check_decoded(PROTO_AT_SUPERVISOR, buf, (size_t)n, nfds, &m);
		fdpass_close_all(in, nfds);
	}
	free(buf);

	/* One record in, one recvmsg out: nothing may be left queued. */
	char probe;
	CHECK(recv(sv[1], &probe, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN);
	check_no_leak();
}

/* (c) The bytes as a message to encode. */
static void encode_struct(const uint8_t *data, size_t size)
{
	struct proto_msg m, got;
	uint8_t out[PROTO_MSG_MAX];

	memset(&m, 0, sizeof(m));
	memcpy(&m, data, size < sizeof(m) ? size : sizeof(m));
	int n = proto_encode(&m, out, sizeof(out));
	if (n < 0)
		return;
	CHECK(n >= PROTO_HDR_SIZE && n <= PROTO_MSG_MAX);
	enum proto_side side = m.type < 100 ? PROTO_AT_WORKER : PROTO_AT_SUPERVISOR;
	enum proto_err e = proto_decode(side, out, (size_t)n, proto_nfds(&m), &got);
	if (e != PROTO_OK) {
		fprintf(stderr, "fuzz_proto: encoded %s does not decode: %s\n",
			proto_name(m.type), proto_strerror(e));
		abort();
	}
	/* Text fields come back cut to their field, NUL terminated. */
	CHECK(got.type == m.type);
	switch (m.type) {
	case PROTO_CONN:
		CHECK(got.u.conn.count == m.u.conn.count);
		for (int i = 0; i < m.u.conn.count; i++) {
			const struct proto_conn *a = &m.u.conn.conns[i], *b = &got.u.conn.conns[i];
			CHECK(a->id == b->id);
			CHECK(strncmp(a->listener, b->listener, PROTO_LISTENER_MAX - 1) == 0);
			CHECK(strncmp(a->peer, b->peer, PROTO_PEER_MAX - 1) == 0);
		}
		break;
	case PROTO_ACK:
	case PROTO_DONE:
		CHECK(got.u.ids.count == m.u.ids.count);
		CHECK(memcmp(got.u.ids.ids, m.u.ids.ids, sizeof(uint64_t) * m.u.ids.count) == 0);
		break;
	case PROTO_READY:
		CHECK(got.u.ready.capacity == m.u.ready.capacity);
		break;
	case PROTO_HEARTBEAT:
		CHECK(got.u.heartbeat.active == m.u.heartbeat.active);
		CHECK(got.u.heartbeat.capacity == m.u.heartbeat.capacity);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!S.init)
		setup();
	if (size < 2)
		return 0;
	int nfds = data[0] & 0x1f;
	int passcred = (data[0] & 0x20) != 0;
	const uint8_t *msg = data + 2;
	size_t len = size - 2;
	size_t bufsize;
	if (data[1] == 0)
		bufsize = PROTO_MSG_MAX;
	else if (data[1] & 0x80)
		bufsize = data[1] & 0x7f;
	else
		bufsize = len + data[1] < 64 ? 0 : len + data[1] - 64;

	decode_raw(msg, len, nfds);
	through_socket(msg, len, nfds <= ATTACH_MAX ? nfds : nfds - ATTACH_MAX,
		       passcred, bufsize);
	encode_struct(msg, len);
	return 0;
}
