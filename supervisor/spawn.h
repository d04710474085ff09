/*
 * Starting a worker process: fork and exec the program's command in a
 * session of its own (no controlling terminal; it leads its own process
 * group), with the channel on fd 3, stdout/stderr where output.c says,
 * stdin on /dev/null, every other fd closed, signal handlers and mask
 * reset, the program's environment, directory and user, and the BATON_*
 * variables (worker/PROTOCOL.md).
 */
#ifndef BATON_SPAWN_H
#define BATON_SPAWN_H

#include <sys/types.h>

struct cfg_program;

/* Fork a worker of cfg for slot and generation, giving it chan as fd 3
 * and outfd[i] (unless -1) as stdout/stderr; the pid, or -1 with errno. */
pid_t spawn_worker(const struct cfg_program *cfg, int slot, int generation, int chan,
		   const int outfd[2]);

#endif
