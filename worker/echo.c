/*
 * baton-echo: the reference echo worker.  Every byte a client sends comes
 * back; a connection ends when the client closes it.  On drain it keeps
 * echoing on open connections and exits when the last one ends.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baton.h"

struct econn {
	struct bufferevent *bev;
	uint64_t id;
	struct baton *baton;
};

static uint32_t capacity;

static void on_read(struct bufferevent *bev, void *arg)
{
	(void)arg;
	bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct econn *e = arg;
	(void)what; /* EOF or error: the connection is over */
	bufferevent_free(bev);
	baton_done(e->baton, e->id); /* may end the loop when draining */
	free(e);
}

static void on_conn(struct baton *b, const struct baton_conn *c, void *arg)
{
	struct event_base *base = arg;
	struct econn *e = calloc(1, sizeof(*e));

	evutil_make_socket_nonblocking(c->fd);
	if (e)
		e->bev = bufferevent_socket_new(base, c->fd, BEV_OPT_CLOSE_ON_FREE);
	if (!e || !e->bev) {
		fprintf(stderr, "baton-echo: out of memory, closing a connection\n");
		close(c->fd);
		free(e);
		baton_done(b, c->id);
		return;
	}
	e->id = c->id;
	e->baton = b;
	bufferevent_setcb(e->bev, on_read, NULL, on_event, e);
	bufferevent_enable(e->bev, EV_READ);
}

static void on_ready_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	if (baton_ready(arg, capacity) < 0)
		fprintf(stderr, "baton-echo: cannot report ready: %s\n", strerror(errno));
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: baton-echo [OPTIONS]\n"
		"A reference echo worker for batond (see worker/PROTOCOL.md).\n"
		"  --capacity N       connections at once to announce (default 0: batond decides)\n"
		"  --ready-delay MS   report ready MS milliseconds after start\n"
		"  --fail-start       exit 1 before reporting ready\n"
		"  -h, --help\n");
}

static int parse_num(const char *opt, const char *s, long max, long *out)
{
	char *end;
	errno = 0;
	*out = strtol(s, &end, 10);
	if (errno || *end || !*s || *out < 0 || *out > max) {
		fprintf(stderr, "baton-echo: %s: want 0..%ld, got '%s'\n", opt, max, s);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"capacity", required_argument, NULL, 'c'},
		{"ready-delay", required_argument, NULL, 'd'},
		{"fail-start", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	long delay_ms = 0, cap = 0;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (parse_num("--capacity", optarg, 1000000, &cap) < 0)
				return 2;
			capacity = (uint32_t)cap;
			break;
		case 'd':
			if (parse_num("--ready-delay", optarg, 3600000, &delay_ms) < 0)
				return 2;
			break;
		case 'f':
			fprintf(stderr, "baton-echo: --fail-start: exiting before ready\n");
			return 1;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "baton-echo: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	/* A client that leaves while we echo to it must cost only its own
	 * connection, not the process (EPIPE instead of SIGPIPE). */
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	if (!base) {
		fprintf(stderr, "baton-echo: cannot create an event base\n");
		return 1;
	}
	/* No drain callback: libbaton ends the loop when drained and idle. */
	static struct baton_callbacks cb = {.conn = on_conn};
	struct baton *b = baton_open(-1, &cb, base);
	if (!b || baton_attach(b, base) < 0) {
		fprintf(stderr, "baton-echo: no batond channel (%s)\n", strerror(errno));
		return 1;
	}
	struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
	struct event *ready = evtimer_new(base, on_ready_timer, b);
	evtimer_add(ready, &tv);

	event_base_dispatch(base);

	event_free(ready);
	baton_free(b);
	event_base_free(base);
	return 0;
}
