/* Fds a worker sends on its channel: see closer.h. */
#include "closer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fdpass.h"
#include "log.h"
#include "util.h"

/*
 * Test-only switch: BATON_TEST_NO_PASSRIGHTS=1 makes batond behave as on a
 * kernel without SO_PASSRIGHTS, so the integration tests can run the closer
 * path on a new kernel.  Not a setting: never use it in production.
 */
#define CLOSER_TEST_ENV "BATON_TEST_NO_PASSRIGHTS"

static struct {
	int fallback;    /* the kernel did not refuse fds on some channel */
	int running;     /* the thread reads cl.pipe[0] */
	int pipe[2];     /* fd numbers to close: [1] is ours, [0] the thread's */
	int max;         /* bound of pending */
	int full_logged; /* the queue was full and said so */
	atomic_int pending;
} cl = {.pipe = {-1, -1}};

/* The thread: close whatever arrives; a close may take as long as it takes. */
static void *closer_main(void *arg)
{
	int fd;
	(void)arg;
	for (;;) {
		ssize_t n = read(cl.pipe[0], &fd, sizeof(fd));
		if (n == (ssize_t)sizeof(fd)) {
			close(fd);
			atomic_fetch_sub(&cl.pending, 1);
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else {
			return NULL; /* writes of one int are atomic: only EOF gets here */
		}
	}
}

int closer_start(void)
{
	struct rlimit rl;
	pthread_t tid;
	sigset_t all, saved;

	if (cl.running)
		return 0;
	cl.max = CLOSER_QUEUE_MAX;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 4 < (rlim_t)cl.max)
		cl.max = rl.rlim_cur / 4 > 0 ? (int)(rl.rlim_cur / 4) : 1;
	if (pipe2(cl.pipe, O_CLOEXEC) < 0)
		return -1;
	/* A full pipe must not block the loop; the count keeps it far from full. */
	if (fd_set_nonblock(cl.pipe[1]) < 0)
		goto fail;
	/* Signals are the loop's: the thread starts with all of them blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	int rc = pthread_create(&tid, NULL, closer_main, NULL);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (rc != 0) {
		errno = rc;
		goto fail;
	}
	pthread_detach(tid);
	cl.running = 1;
	return 0;
fail:;
	int e = errno;
	close(cl.pipe[0]);
	close(cl.pipe[1]);
	cl.pipe[0] = cl.pipe[1] = -1;
	errno = e;
	return -1;
}

void closer_guard_channel(int chan)
{
	int e;
	if (getenv(CLOSER_TEST_ENV) && strcmp(getenv(CLOSER_TEST_ENV), "1") == 0)
		e = ENOPROTOOPT;
	else if (fdpass_refuse_fds(chan) == 0)
		return;
	else
		e = errno;
	if (cl.fallback)
		return;
	cl.fallback = 1;
	if (closer_start() == 0)
		log_warn("worker channels cannot refuse fds (SO_PASSRIGHTS: %s): fds a worker "
			 "sends are closed on a separate thread, queue_max=%d",
			 strerror(e), cl.max);
	else
		log_error("worker channels cannot refuse fds (SO_PASSRIGHTS: %s) and the closer "
			  "thread did not start (%s): fds a worker sends are closed on the event loop",
			  strerror(e), strerror(errno));
}

void closer_close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		if (cl.running && atomic_load(&cl.pending) < cl.max) {
			atomic_fetch_add(&cl.pending, 1);
			if (write(cl.pipe[1], &fds[i], sizeof(fds[i])) == (ssize_t)sizeof(fds[i])) {
				fds[i] = -1;
				cl.full_logged = 0;
				continue;
			}
			atomic_fetch_sub(&cl.pending, 1);
		}
		if (cl.running && !cl.full_logged) {
			cl.full_logged = 1;
			log_warn("closer queue full, closing a worker's fds on the event loop pending=%d",
				 atomic_load(&cl.pending));
		}
		close(fds[i]);
		fds[i] = -1;
	}
}

int closer_pending(void)
{
	return atomic_load(&cl.pending);
}
