/*
 * The control socket: batonctl's way in.  One request per connection in
 * the "baton/1" protocol (common/ctl.h); clients are checked with
 * SO_PEERCRED, bounded in number, size and time, and never block the loop.
 * Long operations (start, stop, restart, scale) stream progress and answer
 * when the pool reaches the state they wait for.
 */
#ifndef BATON_CONTROL_H
#define BATON_CONTROL_H

#include <stddef.h>

struct cfg_baton;
struct evbuffer;

#define CONTROL_CLIENTS_MAX 32
#define CONTROL_REQUEST_TIMEOUT_MS 5000 /* to send the request line */
#define CONTROL_WRITE_TIMEOUT_MS 10000  /* a client that stops reading */

/* Bind and listen on cfg->control; 0, or -1 with the reason in err. */
int control_open(const struct cfg_baton *cfg, char *err, size_t errlen);
/* Close every client, fail pending operations, remove the socket file. */
void control_close(void);
/* batond is shutting down: pending operations fail with a message. */
void control_shutdown(void);
/* The pool changed (a worker became ready or exited): re-check operations. */
void control_pool_changed(void);
/* reload: may the [baton] settings change at run time?  0, or -1 + err. */
int control_check_reconfigure(const struct cfg_baton *cfg, char *err, size_t errlen);
/* Apply new control_mode / control_group settings. */
void control_reconfigure(const struct cfg_baton *cfg);
/* SIGHUP: reload the configuration file (no client to answer). */
void control_reload(void);
/* SIGUSR2: a rolling upgrade of every program (no client to answer). */
void control_upgrade_all(void);
/* Control socket metrics, appended to report_metrics(). */
void control_metrics(struct evbuffer *out);

#endif
