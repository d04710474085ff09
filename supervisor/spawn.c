/* Starting a worker process: see spawn.h. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
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

/* In the child: never returns. */
static void exec_worker(const struct cfg_program *cfg, int slot, int gen, int chan,
			const int outfd[2])
{
	char num[32];
	sigset_t none;

	/* Every signal is blocked (see spawn_gen): reset the handlers first,
	 * then unblock; whatever arrived meanwhile now gets the default. */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setpgid(0, 0);

	/* Captured stdout/stderr first: the pipe ends may sit on fd 3. */
	for (int i = 0; i < 2; i++)
		if (outfd[i] >= 0 && dup2(outfd[i], i + 1) < 0)
			_exit(127);

	if (chan == 3) {
		fcntl(3, F_SETFD, 0);
	} else if (dup2(chan, 3) < 0) {
		dprintf(2, "baton: worker %s:%d: dup2: %s\n", cfg->name, slot,
			strerror(errno));
		_exit(127);
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

	if (cfg->directory[0] && chdir(cfg->directory) < 0) {
		dprintf(2, "baton: worker %s:%d: chdir %s: %s\n", cfg->name, slot,
			cfg->directory, strerror(errno));
		_exit(127);
	}
	if (cfg->user[0]) {
		struct passwd *pw = getpwnam(cfg->user);
		if (!pw || initgroups(pw->pw_name, pw->pw_gid) < 0 ||
		    setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
			dprintf(2, "baton: worker %s:%d: cannot become user %s: %s\n",
				cfg->name, slot, cfg->user,
				pw ? strerror(errno) : "no such user");
			_exit(127);
		}
		setenv("HOME", pw->pw_dir, 1);
		setenv("USER", pw->pw_name, 1);
	}
	execvp(cfg->argv[0], cfg->argv);
	dprintf(2, "baton: worker %s:%d: exec %s: %s\n", cfg->name, slot,
		cfg->argv[0], strerror(errno));
	_exit(127);
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
	 */
	sigset_t all, saved;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &saved);
	pid_t pid = fork();
	if (pid == 0)
		exec_worker(cfg, slot, generation, chan, outfd);
	int fork_errno = errno;
	sigprocmask(SIG_SETMASK, &saved, NULL);
	if (pid > 0)
		setpgid(pid, pid); /* also done by the child; whoever runs first wins */
	errno = fork_errno;
	return pid;
}
