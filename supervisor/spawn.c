/* Starting a worker process: see spawn.h. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static void apply_env(char **env)
{
	for (char **e = env; e && *e; e++)
		putenv(*e);
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

/* In the child: never returns. */
static void exec_worker(const struct cfg_program *cfg, int slot, int gen, int chan,
			const int outfd[2])
{
	char num[32];
	sigset_t none;

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
	int null = open("/dev/null", O_RDONLY);
	if (null >= 0 && null != 0) {
		dup2(null, 0);
		if (null > 3)
			close(null);
	}
	close_range(4, ~0U, 0);

	apply_env(cfg->env); /* first, so it cannot override BATON_* */
	setenv("BATON_FD", "3", 1);
	setenv("BATON_PROGRAM", cfg->name, 1);
	snprintf(num, sizeof(num), "%d", slot);
	setenv("BATON_WORKER", num, 1);
	snprintf(num, sizeof(num), "%d", gen);
	setenv("BATON_GENERATION", num, 1);

	if (cfg->directory[0] && chdir(cfg->directory) < 0)
		fail(cfg, slot, "chdir %s: %s", cfg->directory, strerror(errno));
	if (cfg->user[0]) {
		struct passwd *pw = getpwnam(cfg->user);
		if (!pw || initgroups(pw->pw_name, pw->pw_gid) < 0 ||
		    setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
			fail(cfg, slot, "cannot become user %s: %s", cfg->user,
			     pw ? strerror(errno) : "no such user");
		setenv("HOME", pw->pw_dir, 1);
		setenv("USER", pw->pw_name, 1);
	}
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
