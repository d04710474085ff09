/*
 * baton-http: the reference HTTP/1.1 worker.
 *
 * Serves every connection batond hands it (or, with --listen, that it
 * accepts itself on an SO_REUSEPORT socket: the benchmark baseline) with a
 * small keep-alive HTTP/1.1 server: GET or HEAD of / answers 200 with the
 * --body text and the headers X-Baton-Pid and X-Baton-Generation; other
 * paths 404, other methods 405, malformed requests 400 and close.
 *
 * It is meant to be exposed: header framing is parsed strictly (anything
 * two parsers could read differently is a 400 and a close), a client that
 * does not read its responses stops being read and is then closed, and a
 * request must arrive in bounded time.
 *
 * Each connection is read and written with MSG_DONTWAIT, whatever mode its
 * fd is in (batond hands them over blocking): a new one is read at once (a
 * request usually waits on it already), a response is sent as soon as it
 * is made, and epoll is asked to wait only when a read or a write would
 * block.  A keep-alive request costs a recv and a send, a new connection
 * with its request already in often no epoll call at all.
 *
 * Draining never races a client: a kept-alive connection is closed only
 * right after a response that said "Connection: close", so the next request
 * on each connection is still answered; idle ones stay open until the
 * client leaves or the supervisor's drain_timeout ends the process.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "baton.h"
#include "util.h"

#define HEADER_MAX 8192
#define IDLE_TIMEOUT_SEC 75
/* Unsent response bytes above which a connection is not read: a client that
 * pipelines requests and never reads the answers costs this much, no more. */
#define OUTPUT_MAX (256 * 1024)
/* A client that takes none of its pending responses for this long is gone
 * or hostile; with reading paused, nothing else would ever end it. */
#define WRITE_TIMEOUT_SEC 10
/* From the first byte of a request until its header is complete (and again
 * until its body is in): a client trickling bytes cannot hold a connection. */
#define REQUEST_TIMEOUT_SEC 10
/* Bytes read at a time (libevent's own limit for one read). */
#define READ_MAX 4096

struct hconn {
	int fd;
	struct evbuffer *in, *out;
	struct event *ev_read;  /* polled while reading: IDLE_TIMEOUT_SEC without a byte ends it */
	struct event *ev_write; /* polled while output waits: WRITE_TIMEOUT_SEC without progress ends it */
	struct event *deadline; /* REQUEST_TIMEOUT_SEC for the request under way */
	uint64_t id;
	int from_baton;
	int http10;             /* the current request is HTTP/1.0 */
	int close_after;        /* close once the current response is written */
	int closing;            /* the last response is queued; read nothing more */
	int paused;             /* not read until the output above OUTPUT_MAX is out */
	uint64_t body_left;     /* request body bytes still to discard */
	LIST_ENTRY(hconn) link;
};

static struct {
	struct event_base *base;
	struct baton *baton;
	const char *body;
	size_t body_len;
	uint32_t capacity;
	int draining;
	int generation;
	int pid; /* X-Baton-Pid, read once */
	LIST_HEAD(, hconn) conns;
	unsigned nconns;
} app;

/* Free h and what it holds; its fd is the caller's. */
static void conn_free(struct hconn *h)
{
	/* Out of epoll before the close: batond may still hold a copy of
	 * the fd, and a registration lives as long as any copy does. */
	if (h->ev_read)
		event_free(h->ev_read);
	if (h->ev_write)
		event_free(h->ev_write);
	if (h->deadline)
		event_free(h->deadline);
	if (h->in)
		evbuffer_free(h->in);
	if (h->out)
		evbuffer_free(h->out);
	free(h);
}

static void conn_end(struct hconn *h)
{
	int fd = h->fd, done = h->from_baton;
	uint64_t id = h->id;

	LIST_REMOVE(h, link);
	app.nconns--;
	/* A response that ends the connection: FIN now.  batond may still hold
	 * its copy of the fd (it has not read our ACK yet), and a plain close
	 * sends nothing while another copy is open. */
	if (h->closing && h->from_baton)
		shutdown(fd, SHUT_WR);
	conn_free(h);
	close(fd);
	if (done)
		baton_done(app.baton, id);
	if (app.draining && app.nconns == 0)
		event_base_loopexit(app.base, NULL);
}

static void respond(struct hconn *h, int status, const char *reason,
		    int head_only, const char *body, size_t body_len)
{
	struct evbuffer *out = h->out;
	const char *conn = "";

	/* An HTTP/1.0 client keeps the connection only if told so (RFC 9112 §9.3). */
	if (h->close_after)
		conn = "Connection: close\r\n";
	else if (h->http10)
		conn = "Connection: keep-alive\r\n";
	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\n"
			    "Content-Type: text/plain\r\n"
			    "Content-Length: %zu\r\n"
			    "X-Baton-Pid: %d\r\n"
			    "X-Baton-Generation: %d\r\n"
			    "%s\r\n",
			    status, reason, body_len, app.pid,
			    app.generation, conn);
	if (!head_only)
		evbuffer_add(out, body, body_len);
	if (h->close_after)
		h->closing = 1;
}

static void fail(struct hconn *h, int status, const char *reason)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, reason);

	h->close_after = 1;
	respond(h, status, reason, 0, body, (size_t)n);
}

/* What serve() needs from a request's header block. */
struct request {
	const char *method;
	const char *target;
	int http10;
	int hosts;           /* Host fields */
	int lengths;         /* Content-Length fields */
	uint64_t length;
	int te_fields;       /* Transfer-Encoding fields */
	int te_chunked;      /* times "chunked" is listed */
	int te_last_chunked; /* the last coding listed is "chunked" */
	int conn_close;      /* Connection options */
	int conn_keepalive;
};

/* A tchar of RFC 9110 §5.6.2: what methods and field names are made of. */
static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The next element of the comma-separated list at *p, trimmed, with its
 * length in *len; NULL at the end.  Empty elements are skipped. */
static const char *list_next(const char **p, size_t *len)
{
	const char *s = *p;

	while (*s == ' ' || *s == '\t' || *s == ',')
		s++;
	if (*s == 0)
		return NULL;
	const char *e = s + strcspn(s, ",");
	*p = e;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*len = (size_t)(e - s);
	return s;
}

static int elem_is(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && strncasecmp(s, word, len) == 0;
}

/* Note one header field in r; -1 if its value is not valid for it. */
static int request_field(struct request *r, const char *name, const char *v)
{
	const char *e;
	size_t len;

	if (strcasecmp(name, "Content-Length") == 0) {
		/*
		 * Digits only, and one field: RFC 9110 §8.6 lets a recipient
		 * either merge repeated equal values or reject them, and we
		 * reject them, so that no list or repetition is ever read two
		 * ways (a well-behaved client sends one value).
		 */
		len = strlen(v);
		if (r->lengths++ || len == 0 || len > 18 || strspn(v, "0123456789") != len)
			return -1;
		r->length = strtoull(v, NULL, 10);
	} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
		r->te_fields++;
		while ((e = list_next(&v, &len))) {
			r->te_last_chunked = elem_is(e, len, "chunked");
			r->te_chunked += r->te_last_chunked;
		}
	} else if (strcasecmp(name, "Connection") == 0) {
		while ((e = list_next(&v, &len))) {
			r->conn_close |= elem_is(e, len, "close");
			r->conn_keepalive |= elem_is(e, len, "keep-alive");
		}
	} else if (strcasecmp(name, "Host") == 0) {
		r->hosts++;
	}
	return 0;
}

/*
 * Parse the header block hdr (hlen bytes ending in the empty line, then a
 * NUL) into r, cutting it into strings in place.  Returns 0 or -1 when the
 * block is malformed: a client whose framing we cannot read exactly may be
 * framing it differently for a proxy in front of us, so it gets a 400.
 */
static int request_parse(char *hdr, size_t hlen, struct request *r)
{
	char *p, *eol;

	memset(r, 0, sizeof(*r));
	/* Lines end in CRLF only: some parsers take a bare CR or LF for a line
	 * end and some do not (RFC 9112 §2.2). */
	for (size_t i = 0; i < hlen; i++)
		if (hdr[i] == 0 || (hdr[i] == '\r' && hdr[i + 1] != '\n') ||
		    (hdr[i] == '\n' && (i == 0 || hdr[i - 1] != '\r')))
			return -1;

	/* request-line = method SP request-target SP HTTP-version */
	eol = strstr(hdr, "\r\n");
	*eol = 0;
	r->method = p = hdr;
	while (is_tchar((unsigned char)*p))
		p++;
	if (p == r->method || *p != ' ')
		return -1;
	*p++ = 0;
	r->target = p;
	while ((unsigned char)*p > ' ' && *p != 0x7f)
		p++;
	if (p == r->target || *p != ' ')
		return -1;
	*p++ = 0;
	if (strncmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' || p[8] != 0)
		return -1;
	r->http10 = p[7] == '0';

	/* field-line = field-name ":" OWS field-value OWS, up to the empty line */
	for (p = eol + 2; *p != '\r'; p = eol + 2) {
		char *name = p, *v, *end;

		eol = strstr(p, "\r\n");
		while (is_tchar((unsigned char)*p))
			p++;
		/* Nothing between name and colon, no folded line (RFC 9112 §5.1, §5.2). */
		if (p == name || *p != ':')
			return -1;
		*p++ = 0;
		for (v = p; *v == ' ' || *v == '\t'; v++)
			;
		for (end = eol; end > v && (end[-1] == ' ' || end[-1] == '\t'); end--)
			;
		*end = 0;
		for (p = v; p < end; p++)
			if (((unsigned char)*p < ' ' && *p != '\t') || *p == 0x7f)
				return -1;
		if (request_field(r, name, v) < 0)
			return -1;
	}
	return 0;
}

/* Answer the request whose header block (hlen bytes) is in hdr. */
static void serve(struct hconn *h, char *hdr, size_t hlen)
{
	struct request r;

	h->http10 = 0;
	if (request_parse(hdr, hlen, &r) < 0) {
		fail(h, 400, "Bad Request");
		return;
	}
	h->http10 = r.http10;
	/* RFC 9112 §3.2: one Host field, and HTTP/1.1 must send it. */
	if (r.hosts > 1 || (!r.http10 && r.hosts == 0)) {
		fail(h, 400, "Bad Request");
		return;
	}
	if (r.te_fields) {
		/*
		 * Where this request ends is in doubt if Content-Length comes
		 * too, if it is HTTP/1.0, or if chunked is not the one final
		 * coding (RFC 9112 §6.1, §6.3): 400.  A well-formed chunked body
		 * is one we do not decode, so we cannot find the next request:
		 * 501.  Either way the connection closes.
		 */
		if (r.lengths || r.http10 || !r.te_last_chunked || r.te_chunked != 1)
			fail(h, 400, "Bad Request");
		else
			fail(h, 501, "Not Implemented");
		return;
	}
	h->body_left = r.length;
	if (r.conn_close || (r.http10 && !r.conn_keepalive) || app.draining)
		h->close_after = 1;

	int head = strcmp(r.method, "HEAD") == 0;
	if (strcmp(r.method, "GET") != 0 && !head)
		respond(h, 405, "Method Not Allowed", 0, "405 Method Not Allowed\n", 23);
	else if (strcmp(r.target, "/") != 0)
		respond(h, 404, "Not Found", head, "404 Not Found\n", 14);
	else
		respond(h, 200, "OK", head, app.body, app.body_len);
}

/*
 * Serve the requests buffered on h until the input runs out, the output is
 * above OUTPUT_MAX (reading pauses until all of it is sent) or the
 * connection is closing.  Nothing while paused.
 */
static void conn_serve(struct hconn *h)
{
	struct evbuffer *in = h->in;
	char hdr[HEADER_MAX + 1];

	while (!h->closing && !h->paused) {
		if (h->body_left) {
			uint64_t n = evbuffer_get_length(in);
			n = n < h->body_left ? n : h->body_left;
			evbuffer_drain(in, (size_t)n);
			h->body_left -= n;
			if (h->body_left)
				break;
			evtimer_del(h->deadline); /* this request is all in */
		}
		if (evbuffer_get_length(h->out) > OUTPUT_MAX) {
			h->paused = 1;
			break;
		}
		/* Empty lines before a request line are ignored (RFC 9112 §2.2). */
		while (evbuffer_get_length(in) >= 2) {
			char crlf[2];
			evbuffer_copyout(in, crlf, 2);
			if (crlf[0] != '\r' || crlf[1] != '\n')
				break;
			evbuffer_drain(in, 2);
		}
		struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (end.pos < 0) {
			if (evbuffer_get_length(in) > HEADER_MAX)
				fail(h, 431, "Request Header Fields Too Large");
			break;
		}
		size_t hlen = (size_t)end.pos + 4;
		if (hlen > HEADER_MAX) {
			fail(h, 431, "Request Header Fields Too Large");
			break;
		}
		evtimer_del(h->deadline); /* the header is in */
		evbuffer_remove(in, hdr, hlen);
		hdr[hlen] = 0;
		serve(h, hdr, hlen);
	}
	if (h->closing || h->paused) {
		/* Closing: read no more.  Paused: the client is not reading, its
		 * clock is the write timeout. */
		evtimer_del(h->deadline);
	} else if ((h->body_left || evbuffer_get_length(in)) && !evtimer_pending(h->deadline, NULL)) {
		/* Part of a request is here: it has REQUEST_TIMEOUT_SEC to complete. */
		struct timeval tv = {REQUEST_TIMEOUT_SEC, 0};
		evtimer_add(h->deadline, &tv);
	}
}

/* Send what is queued: 1 all of it, 0 the socket is full, -1 broken. */
static int conn_send(struct hconn *h)
{
	while (evbuffer_get_length(h->out)) {
		struct evbuffer_iovec v[8];
		struct iovec iov[8];
		int n = evbuffer_peek(h->out, -1, NULL, v, 8);
		if (n > 8)
			n = 8;
		for (int i = 0; i < n; i++)
			iov[i] = (struct iovec){v[i].iov_base, v[i].iov_len};
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t w = sendmsg(h->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		evbuffer_drain(h->out, (size_t)w);
	}
	return 1;
}

/* Poll for what h waits for: input unless closing or paused, room in the
 * socket while output waits.  Adding a pending event again costs nothing
 * (and would restart its timeout): only changes reach epoll. */
static void conn_poll(struct hconn *h)
{
	static const struct timeval idle = {IDLE_TIMEOUT_SEC, 0}, write = {WRITE_TIMEOUT_SEC, 0};
	int reading = !h->closing && !h->paused;
	int writing = evbuffer_get_length(h->out) > 0;

	if (reading && !event_pending(h->ev_read, EV_READ, NULL))
		event_add(h->ev_read, &idle);
	else if (!reading && event_pending(h->ev_read, EV_READ, NULL))
		event_del(h->ev_read);
	if (writing && !event_pending(h->ev_write, EV_WRITE, NULL))
		event_add(h->ev_write, &write);
	else if (!writing && event_pending(h->ev_write, EV_WRITE, NULL))
		event_del(h->ev_write);
}

/* Serve what is buffered and send the answers; then end the connection
 * or poll for what comes next.  May free h. */
static void conn_run(struct hconn *h)
{
	for (;;) {
		conn_serve(h);
		int sent = conn_send(h);
		if (sent < 0 || (sent > 0 && h->closing)) {
			conn_end(h);
			return;
		}
		if (sent == 0 || !h->paused)
			break;
		h->paused = 0; /* all out: on with what is buffered */
	}
	conn_poll(h);
}

/* Read what the client sent (once) and serve it.  May free h. */
static void conn_read(struct hconn *h)
{
	struct evbuffer_iovec v;
	ssize_t n;

	if (evbuffer_reserve_space(h->in, READ_MAX, &v, 1) < 1) {
		conn_end(h);
		return;
	}
	do
		n = recv(h->fd, v.iov_base, v.iov_len < READ_MAX ? v.iov_len : READ_MAX, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		conn_poll(h); /* nothing yet (the reserved space is not added) */
		return;
	}
	if (n < 0) {
		conn_end(h); /* reset, or worse */
		return;
	}
	if (n == 0) {
		/* The client is done sending: no request can follow.  What it
		 * already asked for is answered, then the connection ends. */
		h->closing = 1;
		conn_run(h);
		return;
	}
	v.iov_len = (size_t)n;
	evbuffer_commit_space(h->in, &v, 1);
	conn_run(h);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	if (what & EV_TIMEOUT)
		conn_end(arg); /* idle for IDLE_TIMEOUT_SEC */
	else
		conn_read(arg);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	if (what & EV_TIMEOUT)
		conn_end(arg); /* nothing taken for WRITE_TIMEOUT_SEC */
	else
		conn_run(arg);
}

/* A request took longer than REQUEST_TIMEOUT_SEC to arrive. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct hconn *h = arg;

	(void)fd;
	(void)what;
	if (h->body_left) {
		/* Its response is already queued: close once that is out. */
		h->close_after = h->closing = 1;
	} else {
		fail(h, 408, "Request Timeout");
	}
	conn_run(h);
}

static void conn_new(int fd, uint64_t id, int from_baton)
{
	struct hconn *h = calloc(1, sizeof(*h));

	/* No socket options and no fd flags: a connection from batond carries
	 * its listener's options (tcp_nodelay and the rest, as the operator
	 * set them), one accepted here inherits TCP_NODELAY from the --listen
	 * socket, and every read and write says MSG_DONTWAIT itself. */
	if (h) {
		h->fd = fd;
		h->in = evbuffer_new();
		h->out = evbuffer_new();
		h->ev_read = event_new(app.base, fd, EV_READ | EV_PERSIST, on_readable, h);
		h->ev_write = event_new(app.base, fd, EV_WRITE | EV_PERSIST, on_writable, h);
		h->deadline = evtimer_new(app.base, on_deadline, h);
	}
	if (!h || !h->in || !h->out || !h->ev_read || !h->ev_write || !h->deadline) {
		fprintf(stderr, "baton-http: out of memory, closing a connection\n");
		if (h)
			conn_free(h);
		close(fd);
		if (from_baton)
			baton_done(app.baton, id);
		return;
	}
	h->id = id;
	h->from_baton = from_baton;
	LIST_INSERT_HEAD(&app.conns, h, link);
	app.nconns++;
	/* The request is most often here already (from batond it always had
	 * the time to come): read it now, not after a round through epoll. */
	conn_read(h);
}

static void on_conn(struct baton *b, const struct baton_conn *c, void *arg)
{
	(void)b;
	(void)arg;
	conn_new(c->fd, c->id, 1);
}

static void on_drain(struct baton *b, void *arg)
{
	(void)b;
	(void)arg;
	app.draining = 1;
	/* Each connection answers its next request with Connection: close. */
	if (app.nconns == 0)
		event_base_loopexit(app.base, NULL);
}

static void on_ready_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (baton_ready(app.baton, app.capacity) < 0)
		fprintf(stderr, "baton-http: cannot report ready: %s\n", strerror(errno));
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	(void)what;
	(void)arg;
	for (int i = 0; i < 64; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return;
		conn_new(fd, 0, 0);
	}
}

static int listen_on(const char *spec, int defer_s)
{
	struct addr a;
	char err[256];
	int one = 1;

	if (addr_parse(spec, &a, err, sizeof(err)) < 0) {
		fprintf(stderr, "baton-http: --listen %s: %s\n", spec, err);
		return -1;
	}
	if (a.kind != ADDR_TCP) {
		fprintf(stderr, "baton-http: --listen needs a tcp: address\n");
		return -1;
	}
	int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a.ss, a.len) < 0 || listen(fd, 1024) < 0) {
		fprintf(stderr, "baton-http: --listen %s: %s\n", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (defer_s && setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof(defer_s)) < 0) {
		fprintf(stderr, "baton-http: --defer-accept: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: baton-http [OPTIONS]\n"
		"A reference HTTP/1.1 worker for batond (see worker/PROTOCOL.md).\n"
		"  --body TEXT        response body for GET / (default \"hello from baton\\n\")\n"
		"  --capacity N       connections at once to announce (default 0: batond decides)\n"
		"  --ready-delay MS   report ready MS milliseconds after start\n"
		"  --fail-start       exit 1 before reporting ready (a broken release)\n"
		"  --never-ready      never report ready\n"
		"  --listen ADDR      accept on tcp:HOST:PORT with SO_REUSEPORT, no batond\n"
		"  --defer-accept S   with --listen: TCP_DEFER_ACCEPT of S seconds (as batond's\n"
		"                     tcp_defer_accept; the benchmark's direct baseline)\n"
		"  -h, --help\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"body", required_argument, NULL, 'b'},
		{"capacity", required_argument, NULL, 'c'},
		{"ready-delay", required_argument, NULL, 'd'},
		{"fail-start", no_argument, NULL, 'f'},
		{"never-ready", no_argument, NULL, 'n'},
		{"listen", required_argument, NULL, 'l'},
		{"defer-accept", required_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *listen_addr = NULL;
	long delay_ms = 0, defer_s = 0;
	long long v;
	int fail_start = 0, never_ready = 0, c;

	app.body = "hello from baton\n";
	app.pid = (int)getpid();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			app.body = optarg;
			break;
		case 'c':
			if (util_parse_int(optarg, 0, 1000000, &v) < 0) {
				fprintf(stderr, "baton-http: --capacity: want 0..1000000, got '%s'\n", optarg);
				return 2;
			}
			app.capacity = (uint32_t)v;
			break;
		case 'd':
			if (util_parse_int(optarg, 0, 3600000, &v) < 0) {
				fprintf(stderr, "baton-http: --ready-delay: want milliseconds 0..3600000, got '%s'\n", optarg);
				return 2;
			}
			delay_ms = (long)v;
			break;
		case 'f':
			fail_start = 1;
			break;
		case 'n':
			never_ready = 1;
			break;
		case 'l':
			listen_addr = optarg;
			break;
		case 'D':
			if (util_parse_int(optarg, 1, 3600, &v) < 0) {
				fprintf(stderr, "baton-http: --defer-accept: want seconds 1..3600, got '%s'\n", optarg);
				return 2;
			}
			defer_s = (long)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "baton-http: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (defer_s && !listen_addr) {
		fprintf(stderr, "baton-http: --defer-accept needs --listen (behind batond, set tcp_defer_accept)\n");
		return 2;
	}
	if (fail_start) {
		fprintf(stderr, "baton-http: --fail-start: exiting before ready\n");
		return 1;
	}
	/* A client that leaves while its response is written must cost only
	 * its own connection, not the process (EPIPE instead of SIGPIPE). */
	signal(SIGPIPE, SIG_IGN);
	app.body_len = strlen(app.body);
	app.generation = baton_generation();
	LIST_INIT(&app.conns);
	app.base = event_base_new();
	if (!app.base) {
		fprintf(stderr, "baton-http: cannot create an event base\n");
		return 1;
	}

	struct event *ev_accept = NULL, *ev_ready = NULL;
	if (listen_addr) {
		int lfd = listen_on(listen_addr, (int)defer_s);
		if (lfd < 0)
			return 1;
		ev_accept = event_new(app.base, lfd, EV_READ | EV_PERSIST, on_accept, NULL);
		event_add(ev_accept, NULL);
	} else {
		static const struct baton_callbacks cb = {.conn = on_conn, .drain = on_drain};
		app.baton = baton_open(-1, &cb, NULL);
		if (!app.baton) {
			fprintf(stderr, "baton-http: no batond channel (%s); run under batond or use --listen\n",
				strerror(errno));
			return 1;
		}
		if (baton_attach(app.baton, app.base) < 0) {
			fprintf(stderr, "baton-http: %s\n", strerror(errno));
			return 1;
		}
		if (!never_ready) {
			struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
			ev_ready = evtimer_new(app.base, on_ready_timer, NULL);
			evtimer_add(ev_ready, &tv);
		}
	}

	event_base_dispatch(app.base);

	while (!LIST_EMPTY(&app.conns))
		conn_end(LIST_FIRST(&app.conns));
	if (ev_accept) {
		close(event_get_fd(ev_accept));
		event_free(ev_accept);
	}
	if (ev_ready)
		event_free(ev_ready);
	baton_free(app.baton);
	event_base_free(app.base);
	return 0;
}
