/*
 * Descriptor passing (common/fdpass.c) over a real SOCK_SEQPACKET
 * socketpair: fds arrive as new, close-on-exec descriptors for the same
 * open file, records keep their boundaries, and every error path closes
 * whatever the kernel handed over (counted in /proc/self/fd).
 */
#include <dirent.h>
#include <errno.h>
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fdpass.h"


#define NPIPES 20

struct fx {
	int sv[2];        /* sv[0] sends, sv[1] receives */
	int p[NPIPES][2]; /* pipes, -1 when not open */
	int got[FDPASS_MAX + 8];
	int start_fds; /* open fds before the fixture */
};

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->start_fds = count_fds();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, f->sv) < 0)
		return -1;
	for (int i = 0; i < NPIPES; i++)
		f->p[i][0] = f->p[i][1] = -1;
	for (size_t i = 0; i < sizeof(f->got) / sizeof(f->got[0]); i++)
		f->got[i] = -1;
	*state = f;
	return 0;
}

/* Close everything the fixture owns; nothing else may be left open. */
static int teardown(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < 2; i++)
		if (f->sv[i] >= 0)
			close(f->sv[i]);
	for (int i = 0; i < NPIPES; i++)
		fdpass_close_all(f->p[i], 2);
	fdpass_close_all(f->got, sizeof(f->got) / sizeof(f->got[0]));
	int left = count_fds() - f->start_fds;
	free(f);
	if (left != 0) {
		print_error("teardown: %d fd(s) leaked\n", left);
		return -1;
	}
	return 0;
}

static void make_pipes(struct fx *f, int n)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(pipe(f->p[i]), 0); /* deliberately not O_CLOEXEC */
}

/* The read ends of the first n pipes. */
static void read_ends(struct fx *f, int n, int *fds)
{
	for (int i = 0; i < n; i++)
		fds[i] = f->p[i][0];
}

/* got is a new descriptor for the same pipe as p, with FD_CLOEXEC. */
static void check_same_pipe(struct fx *f, int got, int i)
{
	int p0 = f->p[i][0], p1 = f->p[i][1];
	assert_true(got >= 0);
	/* New: not any descriptor the test already had. */
	assert_int_not_equal(got, f->sv[0]);
	assert_int_not_equal(got, f->sv[1]);
	for (int k = 0; k < NPIPES; k++) {
		assert_int_not_equal(got, f->p[k][0]);
		assert_int_not_equal(got, f->p[k][1]);
	}
	int fl = fcntl(got, F_GETFD);
	assert_true(fl >= 0);
	assert_true(fl & FD_CLOEXEC);
	assert_false(fcntl(p0, F_GETFD) & FD_CLOEXEC); /* not inherited */

	struct stat a, b;
	assert_int_equal(fstat(got, &a), 0);
	assert_int_equal(fstat(p0, &b), 0);
	assert_true(S_ISFIFO(a.st_mode));
	assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);

	/* Write on the original, read on the received. */
	char c = (char)('A' + i), r = 0;
	assert_int_equal(write(p1, &c, 1), 1);
	assert_int_equal(read(got, &r, 1), 1);
	assert_int_equal(r, c);
}

static void test_send_no_fds(void **state)
{
	struct fx *f = *state;
	char buf[256];
	int fds[FDPASS_MAX], nfds = -7;

	assert_int_equal(fdpass_send(f->sv[0], "hello", 5, NULL, 0), 0);
	int before = count_fds();
	ssize_t n = fdpass_recv(f->sv[1], buf, sizeof(buf), fds, &nfds);
	assert_int_equal(n, 5);
	assert_int_equal(nfds, 0);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(count_fds(), before);
}

static void test_send_one_fd(void **state)
{
	struct fx *f = *state;
	char buf[256];
	int nfds = -7, fds[1];

	make_pipes(f, 1);
	read_ends(f, 1, fds);
	assert_int_equal(fdpass_send(f->sv[0], "x1", 2, fds, 1), 0);
	int before = count_fds();
	ssize_t n = fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds);
	assert_int_equal(n, 2);
	assert_memory_equal(buf, "x1", 2);
	assert_int_equal(nfds, 1);
	assert_int_equal(count_fds(), before + 1);
	check_same_pipe(f, f->got[0], 0);
	/* The received copy keeps the pipe open after the original is closed. */
	close(f->p[0][0]);
	f->p[0][0] = -1;
	char c = 'z', r = 0;
	assert_int_equal(write(f->p[0][1], &c, 1), 1);
	assert_int_equal(read(f->got[0], &r, 1), 1);
	assert_int_equal(r, 'z');
}

static void test_send_max_fds(void **state)
{
	struct fx *f = *state;
	char buf[256];
	int nfds = -7, fds[FDPASS_MAX];

	make_pipes(f, FDPASS_MAX);
	read_ends(f, FDPASS_MAX, fds);
	assert_int_equal(fdpass_send(f->sv[0], "sixteen", 7, fds, FDPASS_MAX), 0);
	int before = count_fds();
	ssize_t n = fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds);
	assert_int_equal(n, 7);
	assert_int_equal(nfds, FDPASS_MAX);
	assert_int_equal(count_fds(), before + FDPASS_MAX);
	/* In order, each distinct. */
	for (int i = 0; i < FDPASS_MAX; i++) {
		for (int k = 0; k < i; k++)
			assert_int_not_equal(f->got[i], f->got[k]);
		check_same_pipe(f, f->got[i], i);
	}
	/* The slots past nfds were not touched. */
	for (size_t i = FDPASS_MAX; i < sizeof(f->got) / sizeof(f->got[0]); i++)
		assert_int_equal(f->got[i], -1);
}

/* The same fd several times in one message: each arrives as its own. */
static void test_send_same_fd_twice(void **state)
{
	struct fx *f = *state;
	char buf[16];
	int nfds;

	make_pipes(f, 1);
	int fds[3] = {f->p[0][0], f->p[0][0], f->p[0][0]};
	assert_int_equal(fdpass_send(f->sv[0], "d", 1, fds, 3), 0);
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), 1);
	assert_int_equal(nfds, 3);
	assert_int_not_equal(f->got[0], f->got[1]);
	assert_int_not_equal(f->got[1], f->got[2]);
	for (int i = 0; i < 3; i++)
		check_same_pipe(f, f->got[i], 0);
}

static void test_boundaries(void **state)
{
	struct fx *f = *state;
	uint8_t big[4000], buf[8192];
	int nfds, fds[2];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	make_pipes(f, 2);
	read_ends(f, 2, fds);
	assert_int_equal(fdpass_send(f->sv[0], "a", 1, NULL, 0), 0);
	assert_int_equal(fdpass_send(f->sv[0], big, sizeof(big), fds, 1), 0);
	assert_int_equal(fdpass_send(f->sv[0], "ccc", 3, NULL, 0), 0);
	assert_int_equal(fdpass_send(f->sv[0], big, 100, fds + 1, 1), 0);
	assert_int_equal(fdpass_send(f->sv[0], "e", 1, NULL, 0), 0);

	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), 1);
	assert_int_equal(nfds, 0);
	assert_int_equal(buf[0], 'a');

	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), sizeof(big));
	assert_int_equal(nfds, 1);
	assert_memory_equal(buf, big, sizeof(big));
	check_same_pipe(f, f->got[0], 0);

	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got + 1, &nfds), 3);
	assert_int_equal(nfds, 0);
	assert_memory_equal(buf, "ccc", 3);

	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got + 1, &nfds), 100);
	assert_int_equal(nfds, 1);
	assert_memory_equal(buf, big, 100);
	check_same_pipe(f, f->got[1], 1);

	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got + 2, &nfds), 1);
	assert_int_equal(nfds, 0);
	assert_int_equal(buf[0], 'e');

	errno = 0;
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got + 2, &nfds), -1);
	assert_int_equal(errno, EAGAIN);
}

/* A record sized exactly to the buffer is not truncation. */
static void test_exact_buffer(void **state)
{
	struct fx *f = *state;
	char buf[10];
	int nfds;
	assert_int_equal(fdpass_send(f->sv[0], "0123456789", 10, NULL, 0), 0);
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), 10);
	assert_memory_equal(buf, "0123456789", 10);
}

/* An empty record with an fd is data, not EOF. */
static void test_empty_record_with_fd(void **state)
{
	struct fx *f = *state;
	char buf[16];
	int nfds, fds[1];
	make_pipes(f, 1);
	read_ends(f, 1, fds);
	assert_int_equal(fdpass_send(f->sv[0], "", 0, fds, 1), 0);
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), 0);
	assert_int_equal(nfds, 1);
	check_same_pipe(f, f->got[0], 0);
}

static void test_eagain(void **state)
{
	struct fx *f = *state;
	char buf[16];
	int nfds = -7;
	errno = 0;
	/* The sockets are blocking: fdpass_recv must not block. */
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	assert_int_equal(nfds, 0);
	assert_int_equal(f->got[0], -1);
}

static void test_peer_closed(void **state)
{
	struct fx *f = *state;
	char buf[16];
	int nfds, fds[1];

	/* What was sent before the close is still delivered, then EOF. */
	make_pipes(f, 1);
	read_ends(f, 1, fds);
	assert_int_equal(fdpass_send(f->sv[0], "last", 4, fds, 1), 0);
	close(f->sv[0]);
	f->sv[0] = -1;
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), 4);
	assert_int_equal(nfds, 1);
	check_same_pipe(f, f->got[0], 0);
	for (int i = 0; i < 2; i++) { /* and stays so */
		errno = 0;
		assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got + 1, &nfds), -1);
		assert_int_equal(errno, ECONNRESET);
		assert_int_equal(nfds, 0);
	}
}

static void test_truncated_record(void **state)
{
	struct fx *f = *state;
	char buf[100], small[10];
	int nfds = -7, fds[3];

	memset(buf, 'q', sizeof(buf));
	make_pipes(f, 3);
	read_ends(f, 3, fds);
	assert_int_equal(fdpass_send(f->sv[0], buf, sizeof(buf), fds, 3), 0);
	assert_int_equal(fdpass_send(f->sv[0], "next", 4, NULL, 0), 0);
	int before = count_fds();
	errno = 0;
	assert_int_equal(fdpass_recv(f->sv[1], small, sizeof(small), f->got, &nfds), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(nfds, 0);
	assert_int_equal(count_fds(), before);
	for (int i = 0; i < 3; i++)
		assert_int_equal(f->got[i], -1);
	/* The bad record is consumed; the next one is intact. */
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), 4);
	assert_memory_equal(buf, "next", 4);
	assert_int_equal(nfds, 0);
	/* A zero-size buffer truncates too (it is not EOF). */
	assert_int_equal(fdpass_send(f->sv[0], "y", 1, fds, 1), 0);
	before = count_fds();
	errno = 0;
	assert_int_equal(fdpass_recv(f->sv[1], small, 0, f->got, &nfds), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(count_fds(), before);
}

/* Send n copies of fd by hand, optionally with SCM_CREDENTIALS too. */
static void raw_send(int sock, int fd, int n, int creds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 64)];
	} ctl;
	int fds[64];
	char data = 'r';
	struct iovec iov = {.iov_base = &data, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	assert_true(n <= 64);
	memset(&ctl, 0, sizeof(ctl));
	mh.msg_control = ctl.buf;
	mh.msg_controllen = (creds ? CMSG_SPACE(sizeof(struct ucred)) : 0) +
			    (n ? CMSG_SPACE(sizeof(int) * n) : 0);
	if (mh.msg_controllen == 0)
		mh.msg_control = NULL;
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (creds) {
		struct ucred uc = {.pid = getpid(), .uid = getuid(), .gid = getgid()};
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof(uc));
		memcpy(CMSG_DATA(c), &uc, sizeof(uc));
		c = CMSG_NXTHDR(&mh, c);
	}
	if (n) {
		for (int i = 0; i < n; i++)
			fds[i] = fd;
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	assert_int_equal(sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL), 1);
}

static void test_too_many_fds(void **state)
{
	struct fx *f = *state;
	char buf[16];
	int nfds = -7;
	const int counts[] = {FDPASS_MAX + 1, 20, 60};

	make_pipes(f, 1);
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		raw_send(f->sv[0], f->p[0][0], counts[i], 0);
		int before = count_fds();
		errno = 0;
		assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), -1);
		assert_int_equal(errno, EMSGSIZE);
		assert_int_equal(nfds, 0);
		assert_int_equal(count_fds(), before);
		for (size_t k = 0; k < sizeof(f->got) / sizeof(f->got[0]); k++)
			assert_int_equal(f->got[k], -1);
	}
	/* Exactly FDPASS_MAX the same way is fine. */
	raw_send(f->sv[0], f->p[0][0], FDPASS_MAX, 0);
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), 1);
	assert_int_equal(nfds, FDPASS_MAX);
	for (int k = 0; k < FDPASS_MAX; k++)
		check_same_pipe(f, f->got[k], 0);
}

static void test_credentials(void **state)
{
	struct fx *f = *state;
	char buf[16];
	int nfds = -7, on = 1;

	make_pipes(f, 1);
	assert_int_equal(setsockopt(f->sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);

	/* Credentials alone. */
	raw_send(f->sv[0], -1, 0, 1);
	int before = count_fds();
	errno = 0;
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(nfds, 0);
	assert_int_equal(count_fds(), before);

	/* Credentials with fds: the fds arrive and must be closed. */
	raw_send(f->sv[0], f->p[0][0], 2, 1);
	before = count_fds();
	errno = 0;
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(nfds, 0);
	assert_int_equal(count_fds(), before);
	for (int k = 0; k < 2; k++)
		assert_int_equal(f->got[k], -1);

	/* With SO_PASSCRED every record carries credentials, even plain ones. */
	assert_int_equal(fdpass_send(f->sv[0], "p", 1, NULL, 0), 0);
	errno = 0;
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), -1);
	assert_int_equal(errno, EBADMSG);

	/* Credentials and FDPASS_MAX fds do not fit the control buffer. */
	raw_send(f->sv[0], f->p[0][0], FDPASS_MAX, 1);
	before = count_fds();
	errno = 0;
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), -1);
	assert_true(errno == EMSGSIZE || errno == EBADMSG);
	assert_int_equal(nfds, 0);
	assert_int_equal(count_fds(), before);
}

static void test_send_einval(void **state)
{
	struct fx *f = *state;
	int fds[FDPASS_MAX + 8], nfds;
	char buf[16];

	make_pipes(f, 1);
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		fds[i] = f->p[0][0];
	errno = 0;
	assert_int_equal(fdpass_send(f->sv[0], "x", 1, fds, FDPASS_MAX + 1), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(fdpass_send(f->sv[0], "x", 1, fds, FDPASS_MAX + 8), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(fdpass_send(f->sv[0], "x", 1, fds, -1), -1);
	assert_int_equal(errno, EINVAL);
	/* Nothing was sent. */
	errno = 0;
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), -1);
	assert_int_equal(errno, EAGAIN);
}

static void test_send_bad_fd(void **state)
{
	struct fx *f = *state;
	int fds[1] = {1000000};
	errno = 0;
	assert_int_equal(fdpass_send(f->sv[0], "x", 1, fds, 1), -1);
	assert_int_equal(errno, EBADF);
}

static void test_send_epipe(void **state)
{
	struct fx *f = *state;
	struct sigaction sa, old;
	int fds[1];

	/*
	 * Make sure a SIGPIPE would kill us.  (Linux raises SIGPIPE only for
	 * SOCK_STREAM, never for SEQPACKET, so on Linux this pins the errno
	 * rather than MSG_NOSIGNAL.)
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);
	sigset_t set, oldset;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	assert_int_equal(sigprocmask(SIG_UNBLOCK, &set, &oldset), 0);

	make_pipes(f, 1);
	read_ends(f, 1, fds);
	close(f->sv[1]);
	f->sv[1] = -1;
	int before = count_fds();
	errno = 0;
	assert_int_equal(fdpass_send(f->sv[0], "x", 1, NULL, 0), -1);
	assert_int_equal(errno, EPIPE);
	errno = 0;
	assert_int_equal(fdpass_send(f->sv[0], "y", 1, fds, 1), -1);
	assert_int_equal(errno, EPIPE);
	assert_int_equal(count_fds(), before);
	assert_true(fd_is_open(fds[0])); /* the sender's copy is untouched */

	/* A peer that died with records unread: the error is ECONNRESET. */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fdpass_send(sv[0], "unread", 6, fds, 1), 0);
	close(sv[1]);
	errno = 0;
	assert_int_equal(fdpass_send(sv[0], "z", 1, fds, 1), -1);
	assert_true(errno == ECONNRESET || errno == EPIPE);
	errno = 0;
	assert_int_equal(fdpass_send(sv[0], "z", 1, NULL, 0), -1);
	assert_true(errno == ECONNRESET || errno == EPIPE);
	close(sv[0]);
	assert_int_equal(count_fds(), before);

	sigprocmask(SIG_SETMASK, &oldset, NULL);
	sigaction(SIGPIPE, &old, NULL);
}

static void test_send_full(void **state)
{
	struct fx *f = *state;
	char rec[1024];
	int sent = 0, rc;

	memset(rec, 'f', sizeof(rec));
	/* Never blocks: the queue fills and then EAGAIN. */
	while ((rc = fdpass_send(f->sv[0], rec, sizeof(rec), NULL, 0)) == 0)
		assert_true(++sent < 1000000);
	assert_int_equal(rc, -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	assert_true(sent > 0);
}

static void test_close_all(void **state)
{
	(void)state;
	int p[2], fds[4];
	assert_int_equal(pipe(p), 0);
	fds[0] = p[0];
	fds[1] = -1;
	fds[2] = p[1];
	fds[3] = -1;
	fdpass_close_all(fds, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(fds[i], -1);
	assert_false(fd_is_open(p[0]));
	assert_false(fd_is_open(p[1]));
	fdpass_close_all(fds, 0);
}

/*
 * A receiver that refuses fds: the sender's SCM_RIGHTS fails with EPERM,
 * nothing of that record arrives, plain records and fds sent the other
 * way still pass.  Skipped on kernels before 6.16 (ENOPROTOOPT).
 */
static void test_refuse_fds(void **state)
{
	struct fx *f = *state;
	char buf[16];
	int fds[FDPASS_MAX], nfds = -7;

	if (fdpass_refuse_fds(f->sv[1]) < 0) {
		assert_int_equal(errno, ENOPROTOOPT);
		skip();
	}
	make_pipes(f, FDPASS_MAX);
	read_ends(f, FDPASS_MAX, fds);
	int before = count_fds();
	errno = 0;
	assert_int_equal(fdpass_send(f->sv[0], "x", 1, fds, 1), -1);
	assert_int_equal(errno, EPERM);
	errno = 0;
	assert_int_equal(fdpass_send(f->sv[0], "y", 1, fds, FDPASS_MAX), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fdpass_send(f->sv[0], "plain", 5, NULL, 0), 0);
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), 5);
	assert_int_equal(nfds, 0);
	assert_memory_equal(buf, "plain", 5);
	errno = 0;
	assert_int_equal(fdpass_recv(f->sv[1], buf, sizeof(buf), f->got, &nfds), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(count_fds(), before);
	/* The refusing side still sends fds. */
	assert_int_equal(fdpass_send(f->sv[1], "z", 1, fds, 1), 0);
	assert_int_equal(fdpass_recv(f->sv[0], buf, sizeof(buf), f->got, &nfds), 1);
	assert_int_equal(nfds, 1);
	check_same_pipe(f, f->got[0], 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_send_no_fds),
		T(test_send_one_fd),
		T(test_send_max_fds),
		T(test_send_same_fd_twice),
		T(test_boundaries),
		T(test_exact_buffer),
		T(test_empty_record_with_fd),
		T(test_eagain),
		T(test_peer_closed),
		T(test_truncated_record),
		T(test_too_many_fds),
		T(test_credentials),
		T(test_send_einval),
		T(test_send_bad_fd),
		T(test_send_epipe),
		T(test_send_full),
		T(test_close_all),
		T(test_refuse_fds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
