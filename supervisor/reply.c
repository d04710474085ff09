/* Formatting for struct reply: see reply.h. */
#include "reply.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>

#include "ctl.h"

void reply_put(const struct reply *r, char kind, const char *text, size_t len)
{
	if (r && r->put)
		r->put(r->ctx, kind, text, len);
}

void reply_putf(const struct reply *r, char kind, const char *fmt, ...)
{
	char line[CTL_LINE_MAX];
	va_list ap;

	if (!r || !r->put)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	r->put(r->ctx, kind, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void reply_buffer(const struct reply *r, char kind, struct evbuffer *buf)
{
	size_t len = evbuffer_get_length(buf);
	const char *text = (const char *)evbuffer_pullup(buf, -1);
	if (text)
		reply_put(r, kind, text, len);
}

void reply_finish(const struct reply *r, int code, const char *fmt, ...)
{
	/* The "= CODE " prefix and '\n' must fit in a line too. */
	char text[CTL_LINE_MAX - 8];
	va_list ap;

	if (!r || !r->finish)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	r->finish(r->ctx, code, text);
}

int reply_uid(const struct reply *r)
{
	return r ? r->uid : -1;
}
