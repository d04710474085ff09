/*
 * The HTTP endpoint for probes and Prometheus: see httpd.h.
 *
 * It does not use libevent's evhttp.  In 2.1 evhttp bounds neither the
 * number of clients nor the time a request may take (its timeout restarts
 * with every byte), and at the fd limit its accept loop spins and logs
 * every failed accept.  Nothing can be added around it either: 2.1 has no
 * public way to give evhttp a connection accepted elsewhere, nor a hook on
 * a connection before its first request is complete.  What the endpoint
 * must understand is small (GET or HEAD of three paths, no body), so it
 * owns its listening socket and accept loop, as the listeners and the
 * control socket do, and reads HTTP/1.x heads itself on bufferevents (each
 * line parsed by httphead.c, which is fuzzed on its own):
 *
 * - at most HTTPD_CLIENTS_MAX clients; a connection over that is closed as
 *   soon as it is accepted (an answer would race the client's request and
 *   be lost to a reset; a probe sees the failure at once either way);
 * - each request, from accept (or from the previous answer on a kept-alive
 *   connection) to its answer written, gets HTTPD_DEADLINE_SEC however
 *   the bytes trickle in, and a head of at most HTTPD_HEAD_MAX bytes;
 * - when accept fails for want of fds or memory, accepting stops and
 *   resumes on a HTTPD_RETRY_MS timer, logged once, not per attempt.
 */
#include "httpd.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "batond.h"
#include "listener.h"
#include "state.h"
#include "config.h"
#include "httphead.h"
#include "log.h"
#include "report.h"
#include "util.h"

#define HTTPD_CLIENTS_MAX 64
#define HTTPD_DEADLINE_SEC 10
#define HTTPD_HEAD_MAX 8192
#define HTTPD_ACCEPT_BATCH 16
#define HTTPD_RETRY_MS 100
#define HTTPD_REFUSED_LOG_MS 10000 /* at most one "too many clients" line per */

struct client {
	LIST_ENTRY(client) link;
	struct bufferevent *bev;
	struct event *ev_deadline;
	size_t head;     /* bytes of this request's head read so far */
	int writing;     /* its answer is going out: read nothing more */
	int close_after; /* close once that answer is written */
	struct http_head req;
};

static struct {
	int fd;
	struct event *ev_accept;
	struct event *ev_retry;
	LIST_HEAD(, client) clients;
	int nclients;
	uint64_t accept_retries; /* out of fds since the last accept */
	uint64_t refused;        /* closed at once: HTTPD_CLIENTS_MAX open */
	uint64_t refused_logged_ms;
	char address[CFG_STR_MAX];
} hd = {.fd = -1};

static void client_free(struct client *c)
{
	LIST_REMOVE(c, link);
	hd.nclients--;
	event_free(c->ev_deadline);
	bufferevent_free(c->bev); /* closes the fd */
	free(c);
}

/* A new request starts: its own deadline, nothing of the last one kept. */
static void request_reset(struct client *c)
{
	struct timeval tv = {HTTPD_DEADLINE_SEC, 0};
	c->head = 0;
	c->writing = c->close_after = 0;
	c->req = (struct http_head){.method = HM_NONE, .route = HR_BAD, .minor = 1};
	evtimer_add(c->ev_deadline, &tv);
}

/*
 * Queue an answer's status line and headers, then the body (none for HEAD,
 * which gets the same Content-Length).  Reading stops until it is written.
 * 0, or -1 when out of memory (the caller then frees the client).
 */
static int answer(struct client *c, int code, const char *reason, const char *type,
		  struct evbuffer *body, const char *extra)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char date[64];
	struct tm tm;
	time_t now = time(NULL);

	if (!gmtime_r(&now, &tm) || !strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm))
		snprintf(date, sizeof(date), "Thu, 01 Jan 1970 00:00:00 GMT");
	if (evbuffer_add_printf(out,
				"HTTP/1.%d %d %s\r\n"
				"Content-Type: %s\r\n"
				"Cache-Control: no-store\r\n"
				"%s"
				"Date: %s\r\n"
				"Content-Length: %zu\r\n"
				"%s"
				"\r\n",
				c->req.minor, code, reason, type, extra ? extra : "", date,
				evbuffer_get_length(body),
				c->close_after	? "Connection: close\r\n"
				: c->req.minor == 0 ? "Connection: keep-alive\r\n"
						: "") < 0)
		return -1;
	if (c->req.method != HM_HEAD && evbuffer_add_buffer(out, body) < 0)
		return -1;
	c->writing = 1;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
	return 0;
}

static int text_answer(struct client *c, int code, const char *reason, const char *text,
		       const char *extra)
{
	struct evbuffer *body = evbuffer_new();
	if (!body || evbuffer_add_printf(body, "%s\n", text) < 0) {
		if (body)
			evbuffer_free(body);
		return -1;
	}
	int rc = answer(c, code, reason, "text/plain; charset=utf-8", body, extra);
	evbuffer_free(body);
	return rc;
}

/* A request that cannot be understood: say why, then close. */
static int reject(struct client *c, int code)
{
	const char *reason = code == 400   ? "Bad Request"
			     : code == 413 ? "Content Too Large"
			     : code == 414 ? "URI Too Long"
			     : code == 431 ? "Request Header Fields Too Large"
					   : "HTTP Version Not Supported";
	char text[64];
	snprintf(text, sizeof(text), "%s", reason);
	for (char *p = text; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	c->close_after = 1;
	return text_answer(c, code, reason, text, NULL);
}

static int serve(struct client *c)
{
	char line[512];

	c->close_after = c->req.minor == 0 ? !c->req.conn_keepalive : c->req.conn_close;
	if (c->req.has_body)
		return reject(c, 413);
	if (c->req.method == HM_OTHER)
		return text_answer(c, 405, "Method Not Allowed", "method not allowed: GET or HEAD",
				   "Allow: GET, HEAD\r\n");
	if (c->req.method == HM_UNKNOWN)
		return text_answer(c, 501, "Not Implemented", "not implemented: GET or HEAD",
				   "Allow: GET, HEAD\r\n");
	switch (c->req.route) {
	case HR_BAD:
		return reject(c, 400);
	case HR_METRICS: {
		struct evbuffer *body = evbuffer_new();
		if (!body)
			return -1;
		report_metrics(body);
		int rc = answer(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, NULL);
		evbuffer_free(body);
		return rc;
	}
	case HR_HEALTHZ:
		return text_answer(c, 200, "OK", batond.shutting_down ? "ok (shutting down)" : "ok",
				   NULL);
	case HR_READYZ: {
		char counts[448];
		int ready = report_readiness(counts, sizeof(counts));
		if (batond.shutting_down)
			return text_answer(c, 503, "Service Unavailable", "not ready: shutting down",
					   NULL);
		snprintf(line, sizeof(line), "%s: %s", ready ? "ready" : "not ready", counts);
		return text_answer(c, ready ? 200 : 503, ready ? "OK" : "Service Unavailable", line,
				   NULL);
	}
	case HR_NOTFOUND:
		break;
	}
	return text_answer(c, 404, "Not Found", "not found: try /metrics, /healthz or /readyz", NULL);
}

/*
 * The next line of the head into line (NUL-terminated, without its CRLF or
 * LF): 1, 0 when it is not all there yet, -1 when the head would pass
 * HTTPD_HEAD_MAX.
 */
static int next_line(struct client *c, char *line, size_t *len)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t eol = 0, room = HTTPD_HEAD_MAX - c->head;
	struct evbuffer_ptr at = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF);

	if (at.pos < 0)
		return evbuffer_get_length(in) >= room ? -1 : 0;
	if ((size_t)at.pos + eol > room)
		return -1;
	*len = (size_t)at.pos;
	if (evbuffer_remove(in, line, *len) != (int)*len)
		return -1;
	line[*len] = '\0';
	evbuffer_drain(in, eol);
	c->head += *len + eol;
	return 1;
}

/* Read the head line by line; answer once it is complete. */
static void on_read(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	char line[HTTPD_HEAD_MAX + 1];
	size_t len;
	(void)bev;

	while (!c->writing) {
		int r = next_line(c, line, &len), rc = 0;
		if (r == 0)
			return;
		if (r < 0) {
			rc = reject(c, c->req.in_headers ? 431 : 414);
		} else {
			int code = http_head_line(&c->req, line, len);
			if (code == 1)
				rc = serve(c);
			else if (code)
				rc = reject(c, code);
		}
		if (rc < 0) {
			log_warn("http endpoint: out of memory, closing a client");
			client_free(c);
			return;
		}
	}
}

/* The answer is out: close, or wait for the next request. */
static void on_write(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	if (!c->writing)
		return;
	if (c->close_after) {
		client_free(c);
		return;
	}
	request_reset(c);
	bufferevent_enable(bev, EV_READ);
	on_read(bev, c); /* a pipelined request may be waiting */
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what; /* EOF, an error or a timeout: the client is gone */
	client_free(arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	log_debug("http endpoint: closing a client that took over %d s", HTTPD_DEADLINE_SEC);
	client_free(arg);
}

static void client_new(int fd)
{
	struct client *c = calloc(1, sizeof(*c));
	if (c)
		c->bev = bufferevent_socket_new(batond.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c && c->bev)
		c->ev_deadline = evtimer_new(batond.base, on_deadline, c);
	if (!c || !c->bev || !c->ev_deadline) {
		log_warn("http endpoint: out of memory, closing a new client");
		if (c && c->bev)
			bufferevent_free(c->bev);
		else
			close(fd);
		free(c);
		return;
	}
	LIST_INSERT_HEAD(&hd.clients, c, link);
	hd.nclients++;
	request_reset(c);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	/* The head is bounded: read no further ahead than that. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, HTTPD_HEAD_MAX);
	bufferevent_enable(c->bev, EV_READ);
}

static void accept_again(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (hd.ev_accept)
		event_add(hd.ev_accept, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	(void)what;
	(void)arg;
	for (int i = 0; i < HTTPD_ACCEPT_BATCH; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO ||
			    errno == EPERM)
				continue; /* that client only */
			/*
			 * EMFILE, ENFILE, ENOBUFS, ENOMEM (or worse): polling
			 * again now would spin.  Clients wait in the backlog.
			 */
			struct timeval tv = {0, HTTPD_RETRY_MS * 1000};
			if (hd.accept_retries++ == 0)
				log_warn("http endpoint: accept: %s; retrying every %d ms",
					 strerror(errno), HTTPD_RETRY_MS);
			event_del(hd.ev_accept);
			evtimer_add(hd.ev_retry, &tv);
			return;
		}
		if (hd.accept_retries) {
			log_info("http endpoint: accepting again after %llu retries",
				 (unsigned long long)hd.accept_retries);
			hd.accept_retries = 0;
		}
		if (hd.nclients >= HTTPD_CLIENTS_MAX) {
			close(fd);
			hd.refused++;
			uint64_t now = now_ms();
			if (!hd.refused_logged_ms || now - hd.refused_logged_ms >= HTTPD_REFUSED_LOG_MS) {
				hd.refused_logged_ms = now;
				log_warn("http endpoint: too many clients, closing new connections "
					 "max=%d refused_total=%llu",
					 HTTPD_CLIENTS_MAX, (unsigned long long)hd.refused);
			}
			continue;
		}
		client_new(fd);
	}
}

/* Serve the listening socket fd (ours from now on); 0, or -1 with err. */
static int serve_fd(const struct cfg_baton *cfg, int fd, int adopted, char *err, size_t errlen)
{
	char bound[128];
	LIST_INIT(&hd.clients);
	hd.ev_accept = event_new(batond.base, fd, EV_READ | EV_PERSIST, on_accept, NULL);
	hd.ev_retry = evtimer_new(batond.base, accept_again, NULL);
	if (!hd.ev_accept || !hd.ev_retry || event_add(hd.ev_accept, NULL) < 0) {
		snprintf(err, errlen, "http %s: out of memory", cfg->http);
		if (hd.ev_accept)
			event_free(hd.ev_accept);
		if (hd.ev_retry)
			event_free(hd.ev_retry);
		hd.ev_accept = hd.ev_retry = NULL;
		close(fd);
		return -1;
	}
	hd.fd = fd;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		addr_format((struct sockaddr *)&ss, len, bound, sizeof(bound));
	else
		snprintf(bound, sizeof(bound), "?");
	snprintf(hd.address, sizeof(hd.address), "%s", cfg->http);
	if (!adopted)
		log_info("http endpoint address=%s bound=%s paths=/metrics,/healthz,/readyz "
			 "max_clients=%d deadline_s=%d",
			 cfg->http, bound, HTTPD_CLIENTS_MAX, HTTPD_DEADLINE_SEC);
	return 0;
}

int httpd_open(const struct cfg_baton *cfg, char *err, size_t errlen)
{
	int fd = -1, one = 1;

	if (!cfg->http[0])
		return 0;
	const struct addr *a = &cfg->http_addr;
	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 128) < 0)
		goto fail;
	return serve_fd(cfg, fd, 0, err, errlen);
fail:
	snprintf(err, errlen, "http %s: %s", cfg->http, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

void httpd_save(struct state_out *o)
{
	char bound[128] = "?";
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (hd.fd < 0)
		return;
	if (getsockname(hd.fd, (struct sockaddr *)&ss, &len) == 0)
		addr_format((struct sockaddr *)&ss, len, bound, sizeof(bound));
	state_record(o, "http", 1);
	state_fd(o, "fd", hd.fd);
	state_str(o, "bound", bound);
	state_u64(o, "refused", hd.refused);
}

int httpd_adopt(const struct cfg_baton *cfg, const struct state_rec *r, char *err,
		size_t errlen)
{
	char bound[128];
	long long fd;
	if (state_get_int(r, "fd", 0, INT_MAX, &fd, err, errlen) < 0 ||
	    state_get_str(r, "bound", bound, sizeof(bound), err, errlen) < 0 ||
	    state_opt_u64(r, "refused", &hd.refused, err, errlen) < 0 ||
	    listener_check_fd((int)fd, bound, err, errlen) < 0)
		return -1;
	if (!cfg->http[0]) {
		snprintf(err, errlen, "http: a socket in the state, none in the config");
		return -1;
	}
	return serve_fd(cfg, (int)fd, 1, err, errlen);
}

void httpd_close(void)
{
	struct client *c;
	if (hd.fd < 0)
		return;
	while ((c = LIST_FIRST(&hd.clients)))
		client_free(c);
	event_free(hd.ev_accept);
	event_free(hd.ev_retry);
	hd.ev_accept = hd.ev_retry = NULL;
	close(hd.fd);
	hd.fd = -1;
	hd.address[0] = '\0';
}
