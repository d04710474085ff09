/*
 * The control commands (status, start, scale, upgrade, reload...): a
 * table of handlers, one per entry of ctl_commands[] (common/ctl.h), run
 * on a request the control socket parsed, answering through a reply.
 */
#ifndef BATON_COMMAND_H
#define BATON_COMMAND_H

#include <stddef.h>
#include <sys/types.h>

struct ctl_request;
struct reply;

/* Who sent a request, as the control socket established it. */
struct command_peer {
	uid_t uid;
	pid_t pid;
	int full; /* may run every command; 0: the read-only ones only */
};

/* Run one request: checks its arguments and the peer's access, then the
 * command's handler, which answers r now or, for a long command, later. */
void command_run(const struct ctl_request *req, const struct command_peer *peer,
		 const struct reply *r);
/* Start-up check: every command in ctl_commands[] has a handler and every
 * handler a command; 0, or -1 with err. */
int command_check(char *err, size_t errlen);

#endif
