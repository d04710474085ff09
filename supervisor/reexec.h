/*
 * `batonctl reexec [--binary PATH]`: batond replaces its own program image
 * with execve, keeping its pid, its workers and every socket.
 *
 *   preflight  (the loop runs on) the new binary is opened (and kept open:
 *              a rename cannot swap it), checked (a regular file owned by
 *              root or batond's user, writable by no one else, executable),
 *              and run as `batond --check-state 3` with a snapshot of the
 *              state: it must read all of it.  Any failure answers exit 1
 *              with the reason; nothing changed.
 *   commit     signals blocked, the final state sealed in a memfd, close-
 *              on-exec cleared on exactly the fds it names, the environment
 *              and rlimits batond started with, execveat.  If that returns,
 *              everything is undone and the answer is exit 1.
 *   new image  main() sees --restore-state, rebuilds everything from the
 *              state (snapshot.c) and answers the same client: exit 0 with
 *              both versions and the exec window.  If restoring fails (or
 *              crashes) before anything was done, it execs the old binary
 *              (kept open across the exec) with the same state.
 */
#ifndef BATON_REEXEC_H
#define BATON_REEXEC_H

#include <stdint.h>
#include <sys/types.h>

struct reply;
struct state_out;

#define REEXEC_CHECK_TIMEOUT_MS 10000 /* for `batond --check-state` */

/* Set by main: write the whole process's state (requester: the client
 * that asked, to be answered by the new image; final: this is the state
 * that crosses, not the preflight's snapshot). */
struct reexec_hooks {
	void (*save)(struct state_out *o, const struct reply *requester, int final);
};
extern struct reexec_hooks reexec_hooks;

/* At start-up, before anything changes them: the binary's path, the
 * environment and the rlimits the new image gets. */
void reexec_init(void);
/* That environment (socket activation's LISTEN_* left out). */
char **reexec_env(void);
/* The control command: start a reexec answering r (binary NULL: the path
 * batond was started from, looked up again now). */
void reexec_start(const struct reply *r, const char *binary);
/* The pool's hook for children that are not workers. */
int reexec_reaped(pid_t pid, int status);

/* In the new image: what crossed in the "reexec" record, to answer. */
struct reexec_info {
	char old_version[32];
	char binary[256];
	uint64_t commit_us; /* CLOCK_MONOTONIC when the old image committed */
	uint64_t last_accept_us; /* and when it last accepted (0: never) */
	int old_exe;        /* the old binary, for a fallback; -1 once closed */
};
/* The new image is serving: answer the client (NULL: it left), log, and
 * close the old binary's fd. error: the new image failed and this is the
 * old one again (its reason). */
void reexec_restored(const struct reply *r, struct reexec_info *info, const char *error);

#endif
