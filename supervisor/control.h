/*
 * The control socket: batonctl's way in.  One request per connection in
 * the "baton/1" protocol (common/ctl.h); clients are checked with
 * SO_PEERCRED, bounded in number, size and time, and never block the loop.
 * This module is the transport and the line framing only: a request is
 * run by command.c, which answers through the client's struct reply.
 */
#ifndef BATON_CONTROL_H
#define BATON_CONTROL_H

#include <stddef.h>

struct cfg_baton;

#define CONTROL_CLIENTS_MAX 32
#define CONTROL_REQUEST_TIMEOUT_MS 5000 /* to send the request line */
#define CONTROL_WRITE_TIMEOUT_MS 10000  /* a client that stops reading */

/* Bind and listen on cfg->control; 0, or -1 with the reason in err. */
int control_open(const struct cfg_baton *cfg, char *err, size_t errlen);
/* Fail pending operations, close every client (each gets what is
 * buffered for it, best effort), remove the socket file. */
void control_close(void);
/* A reload's new control_mode / control_group settings (the reload hook). */
void control_reconfigure(const struct cfg_baton *cfg);

#endif
