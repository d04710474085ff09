/*
 * The closer thread (supervisor/closer.c), with a descriptor whose close
 * really blocks: a TCP socket with SO_LINGER and unsent data, connected to
 * a listener that never accepts or reads.  Handing it over returns at
 * once; the thread stays in close() until the peer reads, then finishes.
 * The tests run in order in one process: the first one before the thread
 * exists, the others with RLIMIT_NOFILE lowered so the queue bound is small.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "closer.h"
#include "util.h"

#define NOFILE 64 /* so the queue holds NOFILE / 4 */

static int fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/*
 * A socket whose last close lingers: its peer is a connection in lst's
 * backlog (never accepted, never read) and its send buffer is full.
 */
static int lingering_socket(int *lst)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int small = 4096;
	struct linger lg = {.l_onoff = 1, .l_linger = 60};

	*lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(*lst >= 0);
	assert_int_equal(setsockopt(*lst, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	assert_int_equal(bind(*lst, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(*lst, 1), 0);
	assert_int_equal(getsockname(*lst, (struct sockaddr *)&sin, &len), 0);

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(fd_set_nonblock(fd), 0);
	char buf[4096] = {0};
	size_t sent = 0;
	for (;;) {
		ssize_t n = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (n < 0) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			break;
		}
		sent += (size_t)n;
		assert_true(sent < 64u << 20);
	}
	assert_true(sent > 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	return fd;
}

/* Let the peer read everything: the lingering close can then finish. */
static void release_peer(int lst)
{
	struct timeval tv = {10, 0};
	int a = accept(lst, NULL, NULL);
	assert_true(a >= 0);
	assert_int_equal(setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	char buf[65536];
	ssize_t n;
	while ((n = read(a, buf, sizeof(buf))) > 0)
		;
	assert_int_equal(n, 0); /* the closer's FIN, after all the data */
	close(a);
	close(lst);
}

static void wait_pending(int want)
{
	for (int i = 0; i < 500 && closer_pending() != want; i++)
		usleep(10000);
	assert_int_equal(closer_pending(), want);
}

/* Before the thread runs (the SO_PASSRIGHTS case), fds close right here. */
static void test_closes_here_before_start(void **state)
{
	int p[2], fds[3];
	(void)state;
	assert_int_equal(pipe(p), 0);
	fds[0] = p[0];
	fds[1] = -1;
	fds[2] = p[1];
	closer_close_all(fds, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(fds[i], -1);
	assert_false(fd_is_open(p[0]));
	assert_false(fd_is_open(p[1]));
	assert_int_equal(closer_pending(), 0);
	closer_close_all(fds, 0);
}

static void test_blocking_close_does_not_block_caller(void **state)
{
	struct rlimit rl = {NOFILE, NOFILE};
	int lst, p[2];
	(void)state;

	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(closer_start(), 0);
	assert_int_equal(closer_start(), 0); /* once */
	int fd = lingering_socket(&lst);
	assert_int_equal(pipe(p), 0);
	int fds[3] = {fd, p[0], p[1]};
	uint64_t t0 = now_ms();
	closer_close_all(fds, 3);
	assert_true(now_ms() - t0 < 200);
	for (int i = 0; i < 3; i++)
		assert_int_equal(fds[i], -1);
	/* The thread is stuck in the socket's close; the pipe waits behind it. */
	usleep(500000);
	assert_int_equal(closer_pending(), 3);
	assert_true(fd_is_open(p[0]));
	release_peer(lst);
	wait_pending(0);
	assert_false(fd_is_open(p[0]));
	assert_false(fd_is_open(p[1]));
}

/* Over the bound (NOFILE / 4 pending), fds are closed on the caller's thread. */
static void test_full_queue_closes_here(void **state)
{
	int lst, fds[NOFILE / 4 + 4], copy[NOFILE / 4 + 4];
	const int n = NOFILE / 4 + 4;
	(void)state;

	int fd = lingering_socket(&lst);
	closer_close_all(&fd, 1);
	usleep(100000);
	assert_int_equal(closer_pending(), 1);
	for (int i = 0; i < n; i += 2) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		fds[i] = copy[i] = p[0];
		fds[i + 1] = copy[i + 1] = p[1];
	}
	uint64_t t0 = now_ms();
	closer_close_all(fds, n);
	assert_true(now_ms() - t0 < 200);
	assert_int_equal(closer_pending(), NOFILE / 4);
	int here = 0;
	for (int i = 0; i < n; i++) {
		assert_int_equal(fds[i], -1);
		here += !fd_is_open(copy[i]);
	}
	assert_int_equal(here, n - (NOFILE / 4 - 1));
	release_peer(lst);
	wait_pending(0);
	for (int i = 0; i < n; i++)
		assert_false(fd_is_open(copy[i]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_closes_here_before_start),
		cmocka_unit_test(test_blocking_close_does_not_block_caller),
		cmocka_unit_test(test_full_queue_closes_here),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
