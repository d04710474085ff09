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
#define CONTROL_CLIENTS_PER_UID 8  /* for each read-only uid */
#define CONTROL_CLIENTS_RESERVED 8 /* of the MAX, for full-access users only */
#define CONTROL_REQUEST_TIMEOUT_MS 5000 /* to send the request line */
#define CONTROL_WRITE_TIMEOUT_MS 10000  /* a client that stops reading */
#define CONTROL_REFUSED_BURST 20        /* refused clients logged per window; */
#define CONTROL_REFUSED_WINDOW_MS 10000 /* the rest counted in the metrics */

/* Bind and listen on cfg->control; 0, or -1 with the reason in err. */
int control_open(const struct cfg_baton *cfg, char *err, size_t errlen);
/* Fail pending operations, close every client (each gets what is
 * buffered for it, best effort), remove the socket file. */
void control_close(void);
/* A reload's new control_mode / control_group settings (the reload hook). */
void control_reconfigure(const struct cfg_baton *cfg);

/*
 * reexec.  control_save writes the control socket ("control" record) and,
 * when requester is a client's reply, that client with what is queued
 * for it ("control_client"); every other client gets what is queued for
 * it now, and is closed by the exec.  control_adopt serves the saved
 * socket again in the new image; control_adopt_client takes the client
 * back (its request is the one being answered) and returns its reply.
 */
struct state_out;
struct state_rec;
struct reply;
void control_save(struct state_out *o, const struct reply *requester, int final);
int control_adopt(const struct cfg_baton *cfg, const struct state_rec *r, char *err, size_t errlen);
/* What control_adopt reads of the record, checked, nothing adopted
 * (`batond --check-state`); 0, or -1 with err. */
int control_check_rec(const struct state_rec *r, char *err, size_t errlen);
const struct reply *control_adopt_client(const struct state_rec *r, char *err, size_t errlen);

/* The limit that refuses one more client, so that read-only users cannot
 * crowd out root: CONTROL_LIMIT_NONE when it may connect. */
enum control_limit {
	CONTROL_LIMIT_NONE,
	CONTROL_LIMIT_ALL,       /* CONTROL_CLIENTS_MAX clients */
	CONTROL_LIMIT_UID,       /* CONTROL_CLIENTS_PER_UID of a read-only uid */
	CONTROL_LIMIT_READ_ONLY, /* the MAX less the RESERVED, read-only clients */
};
/* full: the new client may run every command; clients, read_only and
 * of_uid: how many are connected now, of them read-only, of its uid. */
enum control_limit control_limit(int full, int clients, int read_only, int of_uid);

#endif
