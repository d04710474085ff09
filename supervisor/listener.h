/*
 * Listening sockets: bind (or adopt from systemd), socket options, accept
 * one connection, and pause polling while the engine says so or while out
 * of fds.  What to do with what is accepted is the engine's (dispatch.c),
 * reached through listener_hooks.
 */
#ifndef BATON_LISTENER_H
#define BATON_LISTENER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "config.h"

struct program;

struct listener {
	TAILQ_ENTRY(listener) link;
	struct cfg_listener cfg;
	struct program *prog;
	int fd;
	struct event *ev, *ev_retry;
	int paused;       /* no credit: not polling */
	int out_of_fds;   /* EMFILE/ENFILE: waiting on ev_retry */
	/* Out of fds: the episode's first and last failed accept (0: none),
	 * and how many; over after an accept SHORT_QUIET_MS after the last.
	 * Only for the log: a reexec starts without one. */
	uint64_t short_since_ms, short_last_ms;
	uint32_t short_failures;
	int tcp;          /* TCP: the TCP options are set on it (accepted sockets inherit them) */
	struct tcp_base {
		/* -1: unknown; in the order of tcp_base_names (listener.c) */
		int nodelay, keepalive, idle, intvl, cnt, user_timeout, defer_accept;
	} tcp_base;       /* the socket's own values, for options not configured */
	char bound[80];   /* the address actually bound */
	dev_t dev;        /* unix: the socket file we created */
	ino_t ino;
	long long base_uid, base_gid; /* unix: its owner after bind, -1 unknown */
	uint64_t accepted;
	uint64_t pauses;   /* times it stopped polling (no credit, out of fds) */
};

/* Set by main: the engine's side of a listener. */
struct listener_hooks {
	void (*accept)(struct listener *l); /* readable: accept what can be taken */
	void (*resume)(struct listener *l); /* the out-of-fds pause is over */
};
extern struct listener_hooks listener_hooks;

/* A listener for cfg, bound and listening (not yet polling, linked to no
 * program); NULL with the reason in err. */
struct listener *listener_new(const struct cfg_listener *cfg, char *err, size_t errlen);
/* Close (listener_close) and free. */
void listener_free(struct listener *l);
/* Bind and listen (not yet polling); 0, or -1 with the reason in err. */
int listener_open(struct listener *l, char *err, size_t errlen);
/*
 * Accept one connection, with the listener's TCP options set and the
 * peer's address in peer ("unix" for a unix socket): the fd (CLOEXEC,
 * blocking), or -1 with errno: EAGAIN when none is waiting; on running
 * out of fds (EMFILE, ENFILE, ENOBUFS, ENOMEM) the listener has paused
 * itself and calls the resume hook after a while; other errors are logged.
 */
int listener_accept(struct listener *l, char *peer, size_t peerlen);
/* Start polling, or stop; cheap when nothing changes. */
void listener_set_paused(struct listener *l, int paused);
/* Apply new settings for the same address (reload): backlog, mode, owner,
 * TCP options for the next connections. */
void listener_update(struct listener *l, const struct cfg_listener *cfg);
/*
 * reexec.  listener_save writes the listener as a "listener" record (its
 * config, fd, address, socket file, counters); listener_adopt rebuilds it
 * in the new image from that record, checking that the fd is the
 * listening socket the record says (nothing is bound again, the socket
 * file is kept); NULL with the reason in err.
 */
struct state_out;
struct state_rec;
void listener_save(const struct listener *l, struct state_out *o);
struct listener *listener_adopt(const struct state_rec *r, char *err, size_t errlen);
/* What listener_adopt reads of the record, checked, nothing adopted
 * (`batond --check-state`); 0, or -1 with err. */
int listener_check_rec(const struct state_rec *r, char *err, size_t errlen);
/* fd is a listening stream socket bound to the address bound (as
 * addr_format prints it); sets it non-blocking.  Close-on-exec stays as it
 * is: a failed restore hands every fd on to the old image. */
int listener_check_fd(int fd, const char *bound, char *err, size_t errlen);

/* Close; a unix socket file is removed if it is still the one we made. */
void listener_close(struct listener *l);

/*
 * Before binding a unix socket at path: remove a stale socket file (one
 * nothing answers on); refuse a live socket or any other file.  who names
 * the owner in the log.  0, or -1 with the reason in err.
 */
int listener_unix_reclaim(const char *path, const char *who, char *err, size_t errlen);
/* Remove path only if it is still the socket file (dev, ino) we made. */
void listener_unix_unlink(const char *path, dev_t dev, ino_t ino);
/*
 * Bind fd to the unix socket path, the file made with mode 0 whatever the
 * umask or a default ACL (it is opened up by listener_unix_set), then check
 * that path is that file -- a socket of ours with mode 0, not a symlink --
 * and note its dev and ino.  0, or -1 with the reason in err.
 */
int listener_unix_bind(int fd, const char *path, dev_t *dev, ino_t *ino, char *err, size_t errlen);
/* The owner bind gave the socket file at path (dev, ino): where an owner
 * or group no longer configured goes back to.  -1 where unknown. */
void listener_unix_base(const char *path, dev_t dev, ino_t ino, long long *uid, long long *gid);
/*
 * Give the socket file at path the owner uid and gid ((uid_t)-1, (gid_t)-1
 * keep them) and the mode, only if path is still the socket file (dev, ino)
 * we bound, acting on the file checked, never through a symlink.  0, or -1
 * with the reason in err (nothing changed, unless a chmod after a chown
 * failed).
 */
int listener_unix_set(const char *path, dev_t dev, ino_t ino, uid_t uid, gid_t gid, mode_t mode,
		      char *err, size_t errlen);

#endif
