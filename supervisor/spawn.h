/*
 * Starting a worker process: fork and exec the program's command in a
 * session of its own (no controlling terminal; it leads its own process
 * group), with the channel on fd 3, stdout/stderr where output.c says,
 * stdin on /dev/null, every other fd closed, signal handlers and mask
 * reset, the program's user (no capability carried over), directory
 * (entered as that user), umask and environment, none of batond's own
 * session variables, and the BATON_* variables (worker/PROTOCOL.md).
 */
#ifndef BATON_SPAWN_H
#define BATON_SPAWN_H

#include <sys/types.h>

struct cfg_program;
struct passwd;

/* Fork a worker of cfg for slot and generation, giving it chan as fd 3
 * and outfd[i] (unless -1) as stdout/stderr; the pid, or -1 with errno. */
pid_t spawn_worker(const struct cfg_program *cfg, int slot, int generation, int chan,
		   const int outfd[2]);

/*
 * The environment a worker starts with, each step over the one before:
 * base (batond's) without the variables of batond's own session (the
 * table in spawn.c; JOURNAL_STREAM is kept if keep_journal, when the
 * worker writes to batond's own stdout or stderr); HOME, USER, LOGNAME
 * and SHELL of pw unless pw is NULL; the program's environment; BATON_*.
 * A NULL-terminated array of strings, all malloc'd (spawn_env_free), or
 * NULL with errno.
 */
char **spawn_env(char *const *base, const struct cfg_program *cfg, const struct passwd *pw,
		 int slot, int generation, int keep_journal);
void spawn_env_free(char **env);

/* Close every fd from lowfd up: close_range(), or, where the kernel has
 * none (before Linux 5.9), one by one up to the fd limit; 0 or -1. */
int spawn_close_from(int lowfd);

#endif
