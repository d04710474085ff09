/*
 * What batonctl's commands share: a connection to batond's control socket,
 * one request and its answer (common/ctl.h), and how batonctl exits.
 * Part of batonctl, not of batond.
 */
#ifndef BATON_CLIENT_H
#define BATON_CLIENT_H

#include <stdint.h>
#include <stdio.h>

#include "ctl.h"

struct client_exchange {
	uint64_t deadline; /* monotonic ms; 0: wait as long as it takes */
	long long timeout; /* seconds, for the message */
	/* Called with each '>' and '|' line of the answer. */
	void (*line)(struct client_exchange *x, char kind, const char *text);
	/* If set, stdin is watched too and this is called when it is
	 * readable; nonzero ends the exchange (top's q key). */
	int (*keys)(void);
	void *data;                  /* for line() */
	char final[CTL_LINE_MAX];    /* the '=' line's text */
	char err[CTL_LINE_MAX + 64]; /* why it failed */
};

/* Connect to batond at path: the fd, or -1 with the reason in err and the
 * exit code it calls for in *code. */
int client_dial(const char *path, int *code, char *err, size_t errlen);
/*
 * Send req (len bytes) on fd and read the answer until its final line.
 * Returns that line's code (its text in x->final), -1 with the reason in
 * x->err, or -2 when x->keys() asked to stop.  Closes fd.
 */
int client_exchange(struct client_exchange *x, int fd, const char *req, size_t len);
/* "batonctl: message" on stderr, then exit with code. */
void client_die(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
/* Flush f; on a write error exit 1, quietly when the reader went away. */
void client_flush(FILE *f);

#endif
