/* batond replacing its own image: see reexec.h. */
#include "reexec.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batond.h"
#include "ctl.h"
#include "dispatch.h"
#include "log.h"
#include "notify.h"
#include "op.h"
#include "pool.h"
#include "reply.h"
#include "state.h"
#include "util.h"
#include "version.h"

struct reexec_hooks reexec_hooks;

static void commit(void);

extern char **environ;

static struct {
	char exe[PATH_MAX]; /* the binary batond was started from */
	char **env;         /* the environment it was started with */
	struct rlimit lim[RLIM_NLIMITS];
	/* the reexec in progress */
	struct op *op;
	char binary[PATH_MAX];
	int binfd, memfd, outfd;
	pid_t child;
	int child_status, child_done, out_eof;
	char out[512];
	size_t outlen;
	struct event *ev_out, *ev_timeout;
} rx = {.binfd = -1, .memfd = -1, .outfd = -1};

void reexec_init(void)
{
	ssize_t n = readlink("/proc/self/exe", rx.exe, sizeof(rx.exe) - 1);
	rx.exe[n > 0 ? n : 0] = '\0';
	size_t k = 0;
	while (environ && environ[k])
		k++;
	rx.env = calloc(k + 1, sizeof(char *));
	size_t m = 0;
	for (size_t i = 0; rx.env && i < k; i++) {
		/* Socket activation's fds are the listeners' now: never again. */
		if (strncmp(environ[i], "LISTEN_", 7) == 0)
			continue;
		if (!(rx.env[m++] = strdup(environ[i])))
			fatal("out of memory");
	}
	if (!rx.env)
		fatal("out of memory");
	for (int i = 0; i < RLIM_NLIMITS; i++)
		getrlimit(i, &rx.lim[i]);
}

char **reexec_env(void)
{
	return rx.env;
}

/* ---- preflight ---- */

static void cleanup(void)
{
	if (rx.child > 0 && !rx.child_done)
		kill(rx.child, SIGKILL); /* reaped by pool_reap: the hook ignores it then */
	if (rx.ev_out)
		event_free(rx.ev_out);
	if (rx.ev_timeout)
		event_free(rx.ev_timeout);
	rx.ev_out = rx.ev_timeout = NULL;
	if (rx.outfd >= 0)
		close(rx.outfd);
	if (rx.memfd >= 0)
		close(rx.memfd);
	if (rx.binfd >= 0)
		close(rx.binfd);
	rx.outfd = rx.memfd = rx.binfd = -1;
	rx.op = NULL;
}

static void op_freed(struct op *op)
{
	(void)op;
	cleanup();
}

static int op_check(struct op *op)
{
	(void)op;
	return 0; /* the pool changing does not matter: the commit takes it as it is */
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	char msg[CTL_LINE_MAX - 64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rx.op)
		op_end(rx.op, CTL_FAILED, msg); /* frees it: cleanup() */
}

static int is_script(int fd)
{
	char magic[2];
	return pread(fd, magic, sizeof(magic), 0) == 2 && magic[0] == '#' && magic[1] == '!';
}

/* Open and check the binary; its fd, or -1 with the reason in err. */
static int open_binary(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	/* The path comes from a control client: O_NONBLOCK, or a FIFO there
	 * would block batond in open() until someone writes to it; O_NOCTTY,
	 * or a terminal there would become batond's if it leads a session. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
	} else if (sb.st_uid != 0 && sb.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: owned by uid %d, not by root or batond's user", path,
			 (int)sb.st_uid);
	} else if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen, "%s: writable by group or others (mode %04o)", path,
			 (unsigned)(sb.st_mode & 07777));
	} else if (!(sb.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH))) {
		snprintf(err, errlen, "%s: not executable (mode %04o)", path,
			 (unsigned)(sb.st_mode & 07777));
	} else if (is_script(fd)) {
		/* execveat() of a script from a close-on-exec fd hands the
		 * interpreter a /dev/fd path that is gone by then (ENOENT). */
		snprintf(err, errlen, "%s: a script, not a batond binary (it is executed from an open fd, which a script cannot be)",
			 path);
	} else {
		return fd;
	}
	close(fd);
	return -1;
}

/* The state now, sealed; its memfd, or -1 with err.  fds gets its fd list. */
static int snapshot(const struct reply *requester, struct state_out *o, int old_exe,
		    uint64_t commit_us, char *err, size_t errlen)
{
	state_out_init(o);
	reexec_hooks.save(o, requester, old_exe >= 0);
	state_record(o, "reexec", 1);
	state_str(o, "old_version", BATON_VERSION);
	state_str(o, "binary", rx.binary);
	state_u64(o, "commit_us", commit_us);
	state_u64(o, "last_accept_us", dispatch_last_accept_us());
	state_fd(o, "old_exe", old_exe);
	return state_seal(o, err, errlen);
}

static void check_done(void)
{
	char how[64];
	if (!rx.child_done || !rx.out_eof)
		return;
	rx.out[rx.outlen] = '\0';
	char *nl = strchr(rx.out, '\n');
	if (nl)
		*nl = '\0';
	if (WIFEXITED(rx.child_status) && WEXITSTATUS(rx.child_status) == 0) {
		commit();
		return;
	}
	util_describe_status(rx.child_status, how, sizeof(how));
	fail("reexec refused: %s failed its check of the state (%s)%s%s; batond %s serves on",
	     rx.binary, how, rx.outlen ? ": " : "", rx.out, BATON_VERSION);
}

int reexec_reaped(pid_t pid, int status)
{
	if (!rx.op || pid != rx.child)
		return 0;
	rx.child_status = status;
	rx.child_done = 1;
	check_done();
	return 1;
}

static void on_output(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	char buf[512];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		event_del(rx.ev_out);
		rx.out_eof = 1;
		check_done();
		return;
	}
	size_t take = (size_t)n < sizeof(rx.out) - 1 - rx.outlen ? (size_t)n
								  : sizeof(rx.out) - 1 - rx.outlen;
	memcpy(rx.out + rx.outlen, buf, take);
	rx.outlen += take;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	fail("reexec refused: %s did not finish checking the state within %d s; batond %s serves on",
	     rx.binary, REEXEC_CHECK_TIMEOUT_MS / 1000, BATON_VERSION);
}

/* Run `BINARY --check-state 3` on the snapshot, without waiting for it. */
static int start_check(char *err, size_t errlen)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		char *argv[] = {"batond", "--check-state", "3", NULL};
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Every other fd of batond's is close-on-exec. */
		if (dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0 ||
		    (rx.memfd == 3 ? fcntl(3, F_SETFD, 0) : dup2(rx.memfd, 3)) < 0)
			_exit(127);
		execveat(rx.binfd, "", argv, rx.env, AT_EMPTY_PATH);
		dprintf(2, "cannot run it: %s\n", strerror(errno));
		_exit(127);
	}
	close(p[1]);
	fd_set_nonblock(p[0]);
	rx.child = pid;
	rx.outfd = p[0];
	rx.ev_out = event_new(batond.base, p[0], EV_READ | EV_PERSIST, on_output, NULL);
	rx.ev_timeout = evtimer_new(batond.base, on_timeout, NULL);
	struct timeval tv = {REEXEC_CHECK_TIMEOUT_MS / 1000, 0};
	if (!rx.ev_out || !rx.ev_timeout || event_add(rx.ev_out, NULL) < 0 ||
	    evtimer_add(rx.ev_timeout, &tv) < 0)
		fatal("out of memory");
	return 0;
}

void reexec_start(const struct reply *r, const char *binary)
{
	char err[CTL_LINE_MAX - 128];
	struct op *busy = LIST_FIRST(&op_list);
	struct program *p;

	if (busy) {
		reply_finish(r, CTL_FAILED, "busy: %s is in progress; try again when it ends",
			     busy->what);
		return;
	}
	TAILQ_FOREACH(p, &batond.programs, link)
		if (p->old_cfg) {
			reply_finish(r, CTL_FAILED, "busy: program %s may still roll back its upgrade",
				     p->cfg.name);
			return;
		}
	if (!reexec_hooks.save) {
		reply_finish(r, CTL_FAILED, "reexec is not available");
		return;
	}
	if (!binary && !rx.exe[0]) {
		reply_finish(r, CTL_FAILED, "reexec: cannot tell which binary batond runs; give --binary");
		return;
	}
	const char *path = binary ? binary : rx.exe;
	/* A replaced binary shows as "PATH (deleted)": the package's new file is at PATH. */
	snprintf(rx.binary, sizeof(rx.binary), "%s", path);
	char *del = strstr(rx.binary, " (deleted)");
	if (!binary && del && del[10] == '\0')
		*del = '\0';
	if (rx.binary[0] != '/') {
		reply_finish(r, CTL_USAGE, "reexec: --binary takes an absolute path, not '%s'", path);
		return;
	}
	int fd = open_binary(rx.binary, err, sizeof(err));
	if (fd < 0) {
		reply_finish(r, CTL_FAILED, "reexec refused: %s; batond %s serves on", err, BATON_VERSION);
		return;
	}
	rx.op = op_new(r, NULL, OP_REEXEC, rx.binary, op_check);
	if (!rx.op) {
		close(fd);
		reply_finish(r, CTL_FAILED, "out of memory");
		return;
	}
	rx.op->freed = op_freed;
	rx.binfd = fd;
	rx.child = 0;
	rx.child_done = rx.out_eof = 0;
	rx.outlen = 0;
	log_info("reexec: checking binary=%s uid=%d", rx.binary, reply_uid(r));
	reply_putf(&rx.op->reply, '>', "checking %s against the state", rx.binary);
	struct state_out o;
	rx.memfd = snapshot(NULL, &o, -1, 0, err, sizeof(err));
	state_out_free(&o);
	if (rx.memfd < 0 || start_check(err, sizeof(err)) < 0)
		fail("reexec refused: %s; batond %s serves on", err, BATON_VERSION);
}

/* ---- commit ---- */

static void set_cloexec(const int *fds, int n, int on)
{
	for (int i = 0; i < n; i++)
		fcntl(fds[i], F_SETFD, on ? FD_CLOEXEC : 0);
}

static void commit(void)
{
	char err[256], fdarg[16];
	struct state_out o;
	sigset_t all, old;
	struct op *other;

	LIST_FOREACH(other, &op_list, link)
		if (other != rx.op) {
			fail("reexec refused: %s started meanwhile; try again when it ends", other->what);
			return;
		}
	int old_exe = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (old_exe < 0) {
		fail("reexec refused: cannot keep the running binary open for a rollback: %s",
		     strerror(errno));
		return;
	}
	reply_putf(&rx.op->reply, '>', "%s checked the state; executing it", rx.binary);
	log_info("reexec: executing binary=%s version=%s", rx.binary, BATON_VERSION);
	notify_reloading();
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	uint64_t commit_us = now_us();
	const struct reply *requester = &rx.op->reply;
	int memfd = snapshot(requester->ctx ? requester : NULL, &o, old_exe, commit_us, err,
			     sizeof(err));
	if (memfd >= 0) {
		set_cloexec(o.fds, o.nfds, 0);
		fcntl(memfd, F_SETFD, 0);
		snprintf(fdarg, sizeof(fdarg), "%d", memfd);
		char oldarg[16];
		snprintf(oldarg, sizeof(oldarg), "%d", old_exe);
		fcntl(old_exe, F_SETFD, 0);
		char *argv[10] = {"batond", "-c", (char *)batond.config_path, "--restore-state", fdarg,
				  "--fallback", oldarg};
		int n = 7;
		if (batond.log_level_fixed) {
			argv[n++] = "-l";
			argv[n++] = (char *)log_level_name(log_get_level());
		}
		argv[n] = NULL;
		for (int i = 0; i < RLIM_NLIMITS; i++)
			setrlimit(i, &rx.lim[i]);
		execveat(rx.binfd, "", argv, rx.env, AT_EMPTY_PATH);
		snprintf(err, sizeof(err), "execveat %s: %s", rx.binary, strerror(errno));
		set_cloexec(o.fds, o.nfds, 1);
		fcntl(old_exe, F_SETFD, FD_CLOEXEC);
		close(memfd);
	}
	state_out_free(&o);
	close(old_exe);
	sigprocmask(SIG_SETMASK, &old, NULL);
	notify_reloaded();
	log_error("reexec: %s", err);
	fail("reexec failed: %s; batond %s serves on", err, BATON_VERSION);
}

/* ---- the new image ---- */

void reexec_restored(const struct reply *r, struct reexec_info *info, const char *error)
{
	uint64_t ms = (now_us() - info->commit_us) / 1000;
	if (info->old_exe >= 0)
		close(info->old_exe);
	info->old_exe = -1;
	if (error) {
		log_error("reexec: %s could not take over: %s; batond %s serves on", info->binary,
			  error, BATON_VERSION);
		reply_finish(r, CTL_FAILED, "reexec failed: %s could not take over: %s; batond %s serves on (pid %d)",
			     info->binary, error, BATON_VERSION, (int)getpid());
		return;
	}
	dispatch_accept_gap_from(info->last_accept_us);
	log_info("reexec: done old_version=%s version=%s pid=%d exec_window_ms=%llu",
		 info->old_version, BATON_VERSION, (int)getpid(), (unsigned long long)ms);
	reply_finish(r, CTL_OK, "reexec: batond %s -> %s, pid %d, exec window %llu ms",
		     info->old_version, BATON_VERSION, (int)getpid(), (unsigned long long)ms);
}
