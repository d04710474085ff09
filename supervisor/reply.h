/*
 * Where the answer to a request goes: the control client that asked, seen
 * by the commands and the operations only through this small interface
 * (progress and output lines, then one final line with an exit code).
 * The control module implements it over its socket; a signal's request
 * has no reply (a NULL pointer, or a zeroed struct), and every call is
 * then a no-op.
 */
#ifndef BATON_REPLY_H
#define BATON_REPLY_H

#include <stddef.h>

struct evbuffer;

struct reply {
	/* A line or lines of the given kind ('>' progress, '|' output);
	 * text is len bytes, '\n' separates lines. */
	void (*put)(void *ctx, char kind, const char *text, size_t len);
	/* The last line: code is batonctl's exit status (enum ctl_exit). */
	void (*finish)(void *ctx, int code, const char *text);
	void *ctx;
	int uid; /* who asked, for logs; -1: batond itself (a signal) */
};

void reply_put(const struct reply *r, char kind, const char *text, size_t len);
void reply_putf(const struct reply *r, char kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* All of buf as lines of the given kind (buf is left as it was). */
void reply_buffer(const struct reply *r, char kind, struct evbuffer *buf);
void reply_finish(const struct reply *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Who asked, for logs: the uid, or -1. */
int reply_uid(const struct reply *r);

#endif
