/* Starting a worker process: see spawn.h. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "cpusched.h"

/*
 * Variables that describe batond's own session, not the worker's: a worker
 * gets one only if its program's `environment` sets it.  batond already
 * unsets the notify and activation ones when it reads them (notify.c,
 * activation.c); they are here too so that this list is the whole answer.
 * Whole names, not LISTEN_* or WATCHDOG_*: systemd sets just these, and a
 * prefix would also take a LISTEN_ADDR an operator exported for a worker.
 * TERM stays: it names the terminal a worker with `stdout = inherit`
 * writes to, and says nothing about batond.
 */
static const char *const session_vars[] = {
	"NOTIFY_SOCKET",	 /* a worker would speak to systemd in batond's name */
	"WATCHDOG_USEC",	 /* batond's watchdog, which a worker cannot keep */
	"WATCHDOG_PID",
	"LISTEN_PID",		 /* sockets systemd passed to batond, not to the worker */
	"LISTEN_FDS",
	"LISTEN_FDNAMES",
	"MAINPID",		 /* pids of batond's unit and its manager */
	"MANAGERPID",
	"SYSTEMD_EXEC_PID",
	"INVOCATION_ID",	 /* names this run of batond's unit */
	"CREDENTIALS_DIRECTORY", /* batond's secrets (LoadCredential=) */
	"JOURNAL_STREAM",	 /* true of batond's stdout/stderr only (see keep_journal) */
	"XDG_RUNTIME_DIR",	 /* the runtime directory of whoever started batond */
	"XDG_SESSION_ID",	 /* that login session */
	"XDG_SESSION_TYPE",
	"XDG_SESSION_CLASS",
	"XDG_SEAT",
	"XDG_VTNR",
	"DBUS_SESSION_BUS_ADDRESS", /* that user's session bus */
	"SSH_AUTH_SOCK",	 /* the operator's SSH agent, maybe forwarded */
	"SSH_AGENT_PID",
	"SSH_CONNECTION",	 /* the operator's login */
	"SSH_CLIENT",
	"SSH_TTY",
};

struct env {
	char **v;
	size_t n, cap;
};

static int is_var(const char *entry, const char *name, size_t len)
{
	return strncmp(entry, name, len) == 0 && entry[len] == '=';
}

static int is_session_var(const char *entry, int keep_journal)
{
	for (size_t i = 0; i < sizeof(session_vars) / sizeof(session_vars[0]); i++)
		if (is_var(entry, session_vars[i], strlen(session_vars[i])))
			return !(keep_journal && strcmp(session_vars[i], "JOURNAL_STREAM") == 0);
	return 0;
}

/* Index of the variable entry names (NAME=...) in e, or -1. */
static ssize_t env_find(const struct env *e, const char *entry)
{
	size_t len = strcspn(entry, "=");
	for (size_t i = 0; i < e->n; i++)
		if (is_var(e->v[i], entry, len))
			return (ssize_t)i;
	return -1;
}

/* Add NAME=VALUE, replacing the variable if e has it (unless only_new). */
static int env_put(struct env *e, int only_new, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int env_put(struct env *e, int only_new, const char *fmt, ...)
{
	char *s;
	va_list ap;
	va_start(ap, fmt);
	int rc = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -1;
	ssize_t i = env_find(e, s);
	if (i >= 0) {
		if (only_new) {
			free(s);
		} else {
			free(e->v[i]);
			e->v[i] = s;
		}
		return 0;
	}
	if (e->n + 2 > e->cap) {
		size_t cap = e->cap * 2;
		char **v = realloc(e->v, cap * sizeof(*v));
		if (!v) {
			free(s);
			return -1;
		}
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = s;
	e->v[e->n] = NULL;
	return 0;
}

char **spawn_env(char *const *base, const struct cfg_program *cfg, const struct passwd *pw,
		 int slot, int generation, int keep_journal)
{
	struct env e = {.v = calloc(64, sizeof(char *)), .cap = 64};
	int rc = e.v ? 0 : -1;

	/* only_new: a name twice in base means what getenv() reads, the first */
	for (char *const *b = base; rc == 0 && b && *b; b++)
		if (strchr(*b, '=') && !is_session_var(*b, keep_journal))
			rc = env_put(&e, 1, "%s", *b);
	if (rc == 0 && pw) {
		rc = env_put(&e, 0, "HOME=%s", pw->pw_dir);
		if (rc == 0)
			rc = env_put(&e, 0, "USER=%s", pw->pw_name);
		if (rc == 0)
			rc = env_put(&e, 0, "LOGNAME=%s", pw->pw_name);
		if (rc == 0) /* an empty shell field means /bin/sh (passwd(5)) */
			rc = env_put(&e, 0, "SHELL=%s",
				     pw->pw_shell && pw->pw_shell[0] ? pw->pw_shell : "/bin/sh");
	}
	for (char **p = cfg->env; rc == 0 && p && *p; p++)
		rc = env_put(&e, 0, "%s", *p);
	if (rc == 0)
		rc = env_put(&e, 0, "BATON_FD=3");
	if (rc == 0)
		rc = env_put(&e, 0, "BATON_PROGRAM=%s", cfg->name);
	if (rc == 0)
		rc = env_put(&e, 0, "BATON_WORKER=%d", slot);
	if (rc == 0)
		rc = env_put(&e, 0, "BATON_GENERATION=%d", generation);
	if (rc < 0) {
		int err = errno;
		spawn_env_free(e.v);
		errno = err;
		return NULL;
	}
	return e.v;
}

void spawn_env_free(char **env)
{
	for (char **p = env; p && *p; p++)
		free(*p);
	free(env);
}

int spawn_close_from(int lowfd)
{
	struct rlimit rl;

	if (close_range((unsigned)lowfd, ~0U, 0) == 0)
		return 0;
	/* ENOSYS before Linux 5.9, or EPERM from an old container seccomp
	 * profile.  batond never lowers its fd limit, so no fd of its is above. */
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	rlim_t max = rl.rlim_cur;
	if (max == RLIM_INFINITY || max > INT_MAX)
		max = INT_MAX;
	for (int fd = lowfd; fd < (int)max; fd++)
		close(fd);
	return 0;
}

/* In the child: say on stderr why the worker cannot start, and exit 127. */
static void fail(const struct cfg_program *cfg, int slot, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));
static void fail(const struct cfg_program *cfg, int slot, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(2, "baton: worker %s:%d: %s\n", cfg->name, slot, msg);
	_exit(127);
}

/*
 * In the child: become pw's user for good.  Groups, then gid, then uid:
 * the uid last, as it takes away the right to change the others.  No
 * PR_SET_NO_NEW_PRIVS: a worker may need a setuid helper (sendmail, ping).
 */
static void become_user(const struct cfg_program *cfg, int slot, const struct passwd *pw)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		fail(cfg, slot, "cannot become user %s: %s", cfg->user, strerror(errno));
	if (pw->pw_uid == 0)
		return; /* a root worker keeps root's powers */
	/*
	 * A setuid from root clears the permitted, effective and ambient
	 * capabilities but not the inheritable ones, which an executable
	 * with inheritable file capabilities would get back.  A setuid by a
	 * batond that is not root but was given CAP_SETUID clears nothing,
	 * and its ambient capabilities would even survive exec: the worker
	 * could become root.  So every set is emptied.  EINVAL: a kernel
	 * without ambient capabilities (before 4.3) has none to clear.
	 */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		fail(cfg, slot, "cannot clear ambient capabilities: %s", strerror(errno));
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3];
	memset(none, 0, sizeof(none));
	if (syscall(SYS_capset, &hdr, none) < 0)
		fail(cfg, slot, "cannot drop capabilities: %s", strerror(errno));
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0 ||
	    ruid != pw->pw_uid || euid != pw->pw_uid || suid != pw->pw_uid ||
	    rgid != pw->pw_gid || egid != pw->pw_gid || sgid != pw->pw_gid || setuid(0) == 0)
		fail(cfg, slot, "user %s: privileges were not dropped", cfg->user);
}

/* In the child: never returns. */
static void exec_worker(const struct cfg_program *cfg, int slot, int gen, int chan,
			const int outfd[2])
{
	sigset_t none;
	const struct passwd *pw = NULL;

	/*
	 * A session of its own first, while every signal is still blocked:
	 * no controlling terminal (a worker of another user could open
	 * /dev/tty and push keystrokes into the operator's shell with
	 * TIOCSTI), and it leads its process group, which batond signals.
	 */
	if (setsid() < 0)
		fail(cfg, slot, "setsid: %s", strerror(errno));

	/* Every signal is blocked (see spawn_worker): reset the handlers
	 * first, then unblock; whatever arrived meanwhile now gets the default. */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* Captured stdout/stderr first: the pipe ends may sit on fd 3. */
	for (int i = 0; i < 2; i++)
		if (outfd[i] >= 0 && dup2(outfd[i], i + 1) < 0)
			fail(cfg, slot, "dup2 %s: %s", i ? "stderr" : "stdout", strerror(errno));

	if (chan == 3) {
		fcntl(3, F_SETFD, 0);
	} else if (dup2(chan, 3) < 0) {
		fail(cfg, slot, "dup2 channel: %s", strerror(errno));
	}
	/* batond's fds 0-2 are open (main.c), so this lands on 4 or up. */
	int null = open("/dev/null", O_RDONLY);
	if (null < 0)
		fail(cfg, slot, "/dev/null: %s", strerror(errno));
	if (null != 0 && dup2(null, 0) < 0)
		fail(cfg, slot, "dup2 stdin: %s", strerror(errno));
	if (spawn_close_from(4) < 0)
		fail(cfg, slot, "cannot close inherited fds: %s", strerror(errno));

	if (cfg->user[0]) {
		errno = 0;
		if (!(pw = getpwnam(cfg->user))) {
			/* getpwnam(3): no errno, or one of these, means not found */
			int e = errno;
			int missing = !e || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM;
			fail(cfg, slot, "cannot become user %s: %s", cfg->user,
			     missing ? "no such user" : strerror(e));
		}
	}
	char **env = spawn_env(environ, cfg, pw, slot, gen, outfd[0] < 0 || outfd[1] < 0);
	if (!env)
		fail(cfg, slot, "environment: %s", strerror(errno));
	/* batond's own SCHED_BATCH is not the worker's to inherit (a worker
	 * left with it is slower to wake, not broken: say so and go on). */
	if (cpusched_child() < 0)
		dprintf(2, "baton: worker %s:%d: cannot leave batond's SCHED_BATCH: %s\n",
			cfg->name, slot, strerror(errno));
	if (pw)
		become_user(cfg, slot, pw);
	/* As the worker's user: a directory it may not enter is refused. */
	if (cfg->directory[0] && chdir(cfg->directory) < 0)
		fail(cfg, slot, "chdir %s: %s", cfg->directory, strerror(errno));
	umask((mode_t)cfg->umask);
	environ = env; /* execvp searches the worker's PATH */
	execvp(cfg->argv[0], cfg->argv);
	fail(cfg, slot, "exec %s: %s", cfg->argv[0], strerror(errno));
}

pid_t spawn_worker(const struct cfg_program *cfg, int slot, int generation, int chan,
		   const int outfd[2])
{
	/*
	 * Until the child has reset them, it runs batond's signal handlers:
	 * libevent's would write a signal meant for the new worker (its stop
	 * signal, an operator's kill) into batond's own signal pipe, and
	 * batond would act on it (a TERM shut batond down).  So block every
	 * signal across fork; the child unblocks after resetting handlers.
	 *
	 * The child makes its own session and group.  batond does not also
	 * setpgid() it from here: that would race with the child's setsid()
	 * (which fails in a process that already leads a group).  A signal
	 * batond sends to -pid before the child's setsid() finds no group
	 * (ESRCH); pool.c's signal_worker() and the signal command then
	 * signal the pid itself, which the child gets once it unblocks.
	 */
	sigset_t all, saved;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &saved);
	pid_t pid = fork();
	if (pid == 0)
		exec_worker(cfg, slot, generation, chan, outfd);
	int fork_errno = errno;
	sigprocmask(SIG_SETMASK, &saved, NULL);
	errno = fork_errno;
	return pid;
}
