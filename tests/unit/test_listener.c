/*
 * Unix socket files (supervisor/listener.c): bound with mode 0, opened up
 * only on the file batond bound, and never through what was put in its
 * place (a symlink to a root file, another socket, nothing).  And running
 * out of fds: logged once per episode, not per failed accept.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>

#include "batond.h"
#include "listener.h"
#include "log.h"
#include "state.h"

static char dir[64], path[128], target[128], moved[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/baton-unit-listener-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/app.sock", dir);
	snprintf(target, sizeof(target), "%s/target", dir);
	snprintf(moved, sizeof(moved), "%s/moved.sock", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	unlink(target);
	unlink(moved);
	return rmdir(dir);
}

static int new_socket(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	return fd;
}

/* A root-only file an attacker would like batond to open up. */
static void make_target(void)
{
	int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep\n", 5), 5);
	close(fd);
	assert_int_equal(chmod(target, 0600), 0);
}

static void assert_target_untouched(void)
{
	struct stat st;
	char buf[16] = "";
	assert_int_equal(lstat(target, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	int fd = open(target, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), 5);
	close(fd);
	assert_string_equal(buf, "keep\n");
}

/* The file is made with mode 0 whatever the umask, then set as asked. */
static void test_bind_mode_0_then_set(void **state)
{
	(void)state;
	struct stat st;
	dev_t dev = 0;
	ino_t ino = 0;
	char err[256];
	int fd = new_socket();

	mode_t old = umask(0);
	assert_int_equal(listener_unix_bind(fd, path, &dev, &ino, err, sizeof(err)), 0);
	assert_int_equal(umask(old), 0); /* the umask is given back */
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0);
	assert_true(st.st_dev == dev && st.st_ino == ino);

	assert_int_equal(listener_unix_set(path, dev, ino, (uid_t)-1, (gid_t)-1, 0660, err, sizeof(err)), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	if (geteuid() == 0) {
		assert_int_equal(listener_unix_set(path, dev, ino, 65534, 65534, 0600, err, sizeof(err)), 0);
		assert_int_equal(lstat(path, &st), 0);
		assert_int_equal(st.st_uid, 65534);
		assert_int_equal(st.st_gid, 65534);
		assert_int_equal(st.st_mode & 07777, 0600);
	}
	/* A path already taken is not bound over. */
	int fd2 = new_socket();
	assert_int_equal(listener_unix_bind(fd2, path, &dev, &ino, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Address already in use"));
	close(fd2);
	listener_unix_unlink(path, dev, ino);
	assert_int_equal(lstat(path, &st), -1);
	close(fd);
}

/* The socket replaced by a symlink to a root file: nothing is changed,
 * through the symlink or otherwise, and the symlink is not removed. */
static void test_symlink_refused(void **state)
{
	(void)state;
	struct stat st;
	dev_t dev = 0;
	ino_t ino = 0;
	char err[256];
	int fd = new_socket();

	assert_int_equal(listener_unix_bind(fd, path, &dev, &ino, err, sizeof(err)), 0);
	make_target();
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(listener_unix_set(path, dev, ino, 65534, 65534, 0666, err, sizeof(err)), -1);
	assert_string_equal(err, "is a symlink, not the socket batond bound");
	assert_target_untouched();
	assert_int_equal(lstat(moved, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0); /* ours, still as it was */
	listener_unix_unlink(path, dev, ino);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	close(fd);
}

/* Another file or socket in its place, or none: refused with the reason. */
static void test_other_files_refused(void **state)
{
	(void)state;
	struct stat st;
	dev_t dev = 0, dev2;
	ino_t ino = 0, ino2;
	char err[256];
	int fd = new_socket(), other = new_socket();

	assert_int_equal(listener_unix_bind(fd, path, &dev, &ino, err, sizeof(err)), 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(listener_unix_set(path, dev, ino, (uid_t)-1, (gid_t)-1, 0666, err, sizeof(err)), -1);
	assert_string_equal(err, "is gone");

	assert_int_equal(listener_unix_bind(other, path, &dev2, &ino2, err, sizeof(err)), 0);
	assert_int_equal(listener_unix_set(path, dev, ino, (uid_t)-1, (gid_t)-1, 0666, err, sizeof(err)), -1);
	assert_string_equal(err, "is another socket, not the one batond bound");
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0);
	assert_int_equal(unlink(path), 0);

	make_target();
	assert_int_equal(link(target, path), 0); /* a hard link: another inode than ours */
	assert_int_equal(listener_unix_set(path, dev, ino, (uid_t)-1, (gid_t)-1, 0666, err, sizeof(err)), -1);
	assert_string_equal(err, "is a regular file, not the socket batond bound");
	assert_target_untouched();
	close(fd);
	close(other);
}

/* How many times text stands in the file at p. */
static int count_in(const char *p, const char *text)
{
	char buf[8192];
	int fd = open(p, O_RDONLY | O_CLOEXEC), n = 0;
	assert_true(fd >= 0);
	ssize_t len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(len >= 0);
	buf[len] = '\0';
	for (const char *at = buf; (at = strstr(at, text)); at++)
		n++;
	return n;
}

/* Accept with no fd number left under the soft limit: EMFILE. */
static void accept_out_of_fds(struct listener *l)
{
	struct rlimit saved, low;
	char peer[80];
	int lowest = dup(0);
	assert_true(lowest >= 0);
	close(lowest); /* every fd under it is open */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = (rlim_t)lowest;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	errno = 0;
	int fd = listener_accept(l, peer, sizeof(peer));
	int e = errno;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(e, EMFILE);
}

static void accept_one(struct listener *l)
{
	char peer[80];
	int fd = listener_accept(l, peer, sizeof(peer));
	assert_true(fd >= 0);
	assert_memory_equal(peer, "127.0.0.1:", 10);
	close(fd);
}

/* "accept paused" once per episode of failed accepts, "accept resumed"
 * once the next accept, good or failed, comes a quiet second after the
 * last failure; an episode left open by a listener nobody used since is
 * closed by the next failure, which starts a new one. */
static void test_out_of_fds_episodes(void **state)
{
	char logpath[160], err[200];
	struct cfg_listener cfg;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int clients[5];
	(void)state;

	snprintf(logpath, sizeof(logpath), "%s/batond.log", dir);
	assert_int_equal(log_open_file(logpath, err, sizeof(err)), 0);
	batond.base = event_base_new();
	assert_non_null(batond.base);
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.name, sizeof(cfg.name), "web");
	assert_int_equal(addr_parse("tcp:127.0.0.1:0", &cfg.addr, err, sizeof(err)), 0);
	cfg.backlog = 16;
	cfg.tcp_nodelay = 1;
	struct listener *l = listener_new(&cfg, err, sizeof(err));
	assert_non_null(l);
	assert_int_equal(getsockname(l->fd, (struct sockaddr *)&sin, &sl), 0);
	for (int i = 0; i < 5; i++) { /* waiting in the backlog */
		clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(clients[i], (struct sockaddr *)&sin, sl), 0);
	}

	accept_out_of_fds(l);
	accept_out_of_fds(l);
	l->short_last_ms = l->short_since_ms; /* both in one ms, however busy the machine */
	assert_int_equal(count_in(logpath, "accept paused listener=web"), 1);
	accept_one(l); /* within the quiet second: the episode goes on */
	assert_int_equal(count_in(logpath, "accept resumed"), 0);
	l->short_since_ms -= 2000; /* as if a second and more had passed */
	l->short_last_ms -= 2000;
	accept_one(l);
	assert_int_equal(count_in(logpath, "accept resumed listener=web out_of_fds_ms=0 failures=2"), 1);

	accept_out_of_fds(l); /* a new episode */
	l->short_since_ms -= 2000;
	l->short_last_ms -= 2000;
	accept_out_of_fds(l); /* nothing was accepted meanwhile: it ends the old one */
	assert_int_equal(count_in(logpath, "accept resumed listener=web out_of_fds_ms=0 failures=1"), 1);
	assert_int_equal(count_in(logpath, "accept paused listener=web"), 3);

	for (int i = 0; i < 5; i++)
		close(clients[i]);
	listener_free(l);
	event_base_free(batond.base);
	batond.base = NULL;
	log_close_file();
	unlink(logpath);
}

/* The listener record through a sealed state, with the line of field drop
 * (if any) taken out; the record adopted, or NULL. */
static struct listener *through_state(const struct listener *l, const char *drop)
{
	struct state_out o;
	struct state st;
	char err[200];
	state_out_init(&o);
	listener_save(l, &o);
	if (drop) {
		char *at = strstr(o.buf, drop);
		assert_non_null(at);
		char *eol = strchr(at, '\n');
		memmove(at, eol + 1, o.len - (size_t)(eol + 1 - o.buf));
		o.len -= (size_t)(eol + 1 - at);
		o.buf[o.len] = '\0';
	}
	int fd = state_seal(&o, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(state_read_fd(fd, &st, err, sizeof(err)), 0);
	close(fd);
	state_out_free(&o);
	struct listener *a = listener_adopt(&st.rec[0], err, sizeof(err));
	if (!a)
		fprintf(stderr, "adopt: %s\n", err);
	state_free(&st);
	return a;
}

/* tcp_base.defer_accept crosses a reexec; a state without it (a writer
 * that never set the option) reads the socket's own value instead. */
static void test_adopt_defer_accept_base(void **state)
{
	char err[200];
	struct cfg_listener cfg;
	(void)state;

	batond.base = event_base_new();
	assert_non_null(batond.base);
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.name, sizeof(cfg.name), "web");
	snprintf(cfg.program, sizeof(cfg.program), "p");
	assert_int_equal(addr_parse("tcp:127.0.0.1:0", &cfg.addr, err, sizeof(err)), 0);
	cfg.backlog = 16;
	snprintf(cfg.address, sizeof(cfg.address), "tcp:127.0.0.1:0");
	cfg.tcp_defer_accept = 2000;
	struct listener *l = listener_new(&cfg, err, sizeof(err));
	assert_non_null(l);
	assert_int_equal(l->tcp_base.defer_accept, 0); /* read before batond set it */
	int v;
	socklen_t len = sizeof(v);
	assert_int_equal(getsockopt(l->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &v, &len), 0);
	assert_true(v > 0); /* set */

	struct listener *a = through_state(l, NULL);
	assert_non_null(a);
	assert_int_equal(a->tcp_base.defer_accept, 0); /* the saved base, not the socket's value */
	a->fd = -1; /* the same socket as l's */
	listener_free(a);

	l->tcp_base.defer_accept = 1; /* a base only the state can tell */
	a = through_state(l, "tcp_base.defer_accept ");
	assert_non_null(a);
	assert_int_equal(a->tcp_base.defer_accept, v); /* absent: read off the socket */
	a->fd = -1;
	listener_free(a);

	listener_free(l);
	event_base_free(batond.base);
	batond.base = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bind_mode_0_then_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_files_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_fds_episodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_defer_accept_base, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
