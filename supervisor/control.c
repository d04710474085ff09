/*
 * The control socket: transport and framing of the "baton/1" protocol
 * (common/ctl.h).  See control.h; the commands are command.c's.
 */
#include "control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>


#include "batond.h"
#include "command.h"
#include "config.h"
#include "ctl.h"
#include "listener.h"
#include "log.h"
#include "op.h"
#include "reply.h"
#include "state.h"
#include "util.h"

enum access { ACCESS_NONE, ACCESS_READ, ACCESS_FULL };

struct client {
	LIST_ENTRY(client) link;
	struct bufferevent *bev;
	pid_t pid;
	uid_t uid;
	enum access access;
	int requested; /* its one request was read: no more input */
	int answered;  /* the "=" line is queued: close once it is written */
	struct event *deadline; /* for the request line */
	struct reply reply;
};

static struct {
	int fd;
	struct event *ev;
	struct event *ev_retry; /* out of fds: accept again on a timer */
	struct event *ev_refused; /* the end of a refusal window that left lines out */
	uint64_t accept_retries;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
	long long base_gid; /* the file's group after bind: without control_group; -1 unknown */
	gid_t group;
	int have_group, group_write;
	unsigned mode;
	LIST_HEAD(, client) clients;
	struct log_limit refusals;
} ctl = {.fd = -1, .refusals = {.burst = CONTROL_REFUSED_BURST, .window_ms = CONTROL_REFUSED_WINDOW_MS}};

static void say_left_out(unsigned n)
{
	log_warn("control: %u more refused clients not logged (at most %d lines per %d s) "
		 "refused_denied_total=%llu refused_busy_total=%llu",
		 n, CONTROL_REFUSED_BURST, CONTROL_REFUSED_WINDOW_MS / 1000,
		 (unsigned long long)batond.control.refused_denied,
		 (unsigned long long)batond.control.refused_busy);
}

/* A window that left lines out says how many when it ends, not only when
 * (if ever) the next client is refused. */
static void arm_refusals_due(void)
{
	uint64_t due = log_limit_due_ms(&ctl.refusals), now = now_ms();
	if (!due || !ctl.ev_refused || evtimer_pending(ctl.ev_refused, NULL))
		return;
	uint64_t wait = due > now ? due - now : 0;
	struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
	evtimer_add(ctl.ev_refused, &tv);
}

static void refusals_due(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	unsigned n = log_limit_close(&ctl.refusals, now_ms());
	if (n)
		say_left_out(n);
	else /* a refusal said it and opened a new window, or libevent's clock ran ahead */
		arm_refusals_due();
}

/* A refused client's line, unless clients were refused faster than
 * CONTROL_REFUSED_BURST per CONTROL_REFUSED_WINDOW_MS: anyone who may
 * connect can cause them at will.  The metrics count every refusal. */
static int refusal_logged(void)
{
	unsigned left_out;
	int ok = log_limit_take(&ctl.refusals, now_ms(), &left_out);
	if (left_out)
		say_left_out(left_out);
	if (!ok)
		arm_refusals_due();
	return ok;
}

/* ---- output ---- */

static void client_free(struct client *c)
{
	if (c->requested)
		op_reply_gone(c); /* an operation it started goes on without it */
	LIST_REMOVE(c, link);
	batond.control.clients--;
	event_free(c->deadline);
	bufferevent_free(c->bev);
	free(c);
}

/* Append text as lines of the given kind, cutting lines to the limit. */
static void put_lines(struct client *c, char kind, const char *text, size_t len)
{
	struct evbuffer *out;
	size_t max = CTL_LINE_MAX - 3; /* "K " and '\n' */

	if (!c || c->answered)
		return;
	out = bufferevent_get_output(c->bev);
	while (len) {
		const char *nl = memchr(text, '\n', len);
		size_t n = nl ? (size_t)(nl - text) : len;
		size_t take = n > max ? max : n;
		evbuffer_add_printf(out, "%c ", kind);
		evbuffer_add(out, text, take);
		evbuffer_add(out, "\n", 1);
		if (take < n) {
			text += take;
			len -= take;
			continue;
		}
		text += n + (nl ? 1 : 0);
		len -= n + (nl ? 1 : 0);
	}
}

/* The last line; the client is closed once it has been written. */
static void finish(struct client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void finish(struct client *c, int code, const char *fmt, ...)
{
	char text[CTL_LINE_MAX - 8];
	va_list ap;

	if (!c || c->answered)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (char *t = text; *t; t++)
		if (*t == '\n' || (unsigned char)*t < 0x20 || (unsigned char)*t > 0x7e)
			*t = ' ';
	evbuffer_add_printf(bufferevent_get_output(c->bev), "= %d%s%s\n", code,
			    text[0] ? " " : "", text);
	c->answered = 1;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
}


static void reply_put_cb(void *ctx, char kind, const char *text, size_t len)
{
	put_lines(ctx, kind, text, len);
}

static void reply_finish_cb(void *ctx, int code, const char *text)
{
	finish(ctx, code, "%s", text);
}

/* ---- connections ---- */

static void on_read(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, NULL);
	struct ctl_request req;
	char line[CTL_LINE_MAX], err[256];

	if (c->answered || c->requested)
		return; /* one request per connection: the rest is ignored */
	if (eol.pos < 0) {
		if (evbuffer_get_length(in) >= CTL_LINE_MAX) {
			batond.control.bad_requests++;
			finish(c, CTL_USAGE, "request longer than %d bytes", CTL_LINE_MAX);
		}
		return;
	}
	size_t len = (size_t)eol.pos + 1;
	if (len > CTL_LINE_MAX) {
		batond.control.bad_requests++;
		finish(c, CTL_USAGE, "request longer than %d bytes", CTL_LINE_MAX);
		return;
	}
	evbuffer_remove(in, line, len);
	bufferevent_disable(bev, EV_READ);
	if (ctl_parse_request(line, len, &req, err, sizeof(err)) < 0) {
		batond.control.bad_requests++;
		log_debug("control: bad request uid=%d pid=%d error=\"%s\"", (int)c->uid,
			  (int)c->pid, err);
		finish(c, CTL_USAGE, "bad request: %s", err);
		return;
	}
	c->requested = 1;
	batond.control.requests++;
	struct command_peer peer = {.uid = c->uid, .pid = c->pid,
				    .full = c->access == ACCESS_FULL};
	command_run(&req, &peer, &c->reply);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	(void)bev;
	if (c->answered)
		client_free(c);
}

/* The request is due CONTROL_REQUEST_TIMEOUT_MS after connecting, however
 * it trickles in: a read timeout would start again with every byte. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	(void)fd;
	(void)what;
	if (c->answered || c->requested)
		return;
	/* Silent or half a request: tell it, then let it go. */
	batond.control.bad_requests++;
	finish(c, CTL_USAGE, "no complete request within %d s", CONTROL_REQUEST_TIMEOUT_MS / 1000);
	bufferevent_set_timeouts(c->bev, NULL, &(struct timeval){1, 0});
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;
	(void)bev;
	if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && !c->answered && !c->requested &&
	    evbuffer_get_length(bufferevent_get_input(bev)) == 0) {
		client_free(c); /* left without asking anything */
		return;
	}
	if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && !c->answered) {
		/* A half-closed client may still read the answer. */
		bufferevent_disable(bev, EV_READ);
		if (!c->requested)
			finish(c, CTL_USAGE, "request not terminated by a newline");
		return;
	}
	client_free(c); /* error, write timeout, or gone */
}

static enum access peer_access(uid_t uid, gid_t gid)
{
	if (uid == 0 || uid == geteuid())
		return ACCESS_FULL;
	if (!ctl.have_group)
		return ACCESS_NONE;
	int member = gid == ctl.group;
	if (!member) {
		struct passwd *pw = getpwuid(uid);
		gid_t groups[256];
		int ng = 256;
		if (pw && getgrouplist(pw->pw_name, pw->pw_gid, groups, &ng) >= 0)
			for (int i = 0; i < ng && !member; i++)
				member = groups[i] == ctl.group;
	}
	if (!member)
		return ACCESS_NONE;
	return ctl.group_write ? ACCESS_FULL : ACCESS_READ;
}

enum control_limit control_limit(int full, int clients, int read_only, int of_uid)
{
	if (clients >= CONTROL_CLIENTS_MAX)
		return CONTROL_LIMIT_ALL;
	if (full)
		return CONTROL_LIMIT_NONE; /* they may stop batond anyway */
	if (of_uid >= CONTROL_CLIENTS_PER_UID)
		return CONTROL_LIMIT_UID;
	if (read_only >= CONTROL_CLIENTS_MAX - CONTROL_CLIENTS_RESERVED)
		return CONTROL_LIMIT_READ_ONLY;
	return CONTROL_LIMIT_NONE;
}

/* Whether one more client of uid may connect; if not, log which limit. */
static int admit(uid_t uid, pid_t pid, enum access access)
{
	static const struct {
		const char *name;
		int max;
	} limits[] = {
		[CONTROL_LIMIT_ALL] = {"all", CONTROL_CLIENTS_MAX},
		[CONTROL_LIMIT_UID] = {"uid", CONTROL_CLIENTS_PER_UID},
		[CONTROL_LIMIT_READ_ONLY] = {"read_only", CONTROL_CLIENTS_MAX - CONTROL_CLIENTS_RESERVED},
	};
	struct client *c;
	int read_only = 0, of_uid = 0;

	LIST_FOREACH(c, &ctl.clients, link) {
		read_only += c->access == ACCESS_READ;
		of_uid += c->uid == uid;
	}
	enum control_limit limit = control_limit(access == ACCESS_FULL, batond.control.clients,
						 read_only, of_uid);
	if (limit == CONTROL_LIMIT_NONE)
		return 1;
	if (refusal_logged())
		log_warn("control: too many clients, refused uid=%d pid=%d limit=%s max=%d", (int)uid,
			 (int)pid, limits[limit].name, limits[limit].max);
	return 0;
}

static void refuse(int fd, const char *line)
{
	ssize_t r = send(fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)r;
	close(fd);
}

#define CONTROL_RETRY_MS 100

static void accept_again(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (ctl.ev)
		event_add(ctl.ev, NULL);
}

/* A client on cfd (closed on failure), not yet reading; NULL if out of memory. */
static struct client *client_new(int cfd, uid_t uid, pid_t pid, enum access access)
{
	struct client *c = calloc(1, sizeof(*c));
	if (c && (c->deadline = evtimer_new(batond.base, on_deadline, c)))
		c->bev = bufferevent_socket_new(batond.base, cfd, BEV_OPT_CLOSE_ON_FREE);
	if (!c || !c->bev) {
		if (c && c->deadline)
			event_free(c->deadline);
		free(c);
		close(cfd);
		return NULL;
	}
	c->uid = uid;
	c->reply = (struct reply){.put = reply_put_cb, .finish = reply_finish_cb, .ctx = c,
				  .uid = (int)uid};
	c->pid = pid;
	c->access = access;
	LIST_INSERT_HEAD(&ctl.clients, c, link);
	batond.control.clients++;
	struct timeval wt = {CONTROL_WRITE_TIMEOUT_MS / 1000, 0};
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_set_timeouts(c->bev, NULL, &wt);
	return c;
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	for (int i = 0; i < 16; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* The client waits in the backlog; polling now would
				 * spin.  Try again on a timer, as the listeners do. */
				struct timeval tv = {0, CONTROL_RETRY_MS * 1000};
				if (ctl.accept_retries++ == 0)
					log_warn("control: accept: %s; retrying every %d ms",
						 strerror(errno), CONTROL_RETRY_MS);
				event_del(ctl.ev);
				evtimer_add(ctl.ev_retry, &tv);
			} else if (errno != EAGAIN && errno != EINTR) {
				log_warn("control: accept: %s", strerror(errno));
			}
			return;
		}
		if (ctl.accept_retries) {
			log_info("control: accepting again after %llu retries",
				 (unsigned long long)ctl.accept_retries);
			ctl.accept_retries = 0;
		}
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			close(cfd);
			continue;
		}
		enum access access = peer_access(cred.uid, cred.gid);
		if (access == ACCESS_NONE) {
			batond.control.refused_denied++;
			if (refusal_logged())
				log_warn("control: permission denied uid=%d gid=%d pid=%d",
					 (int)cred.uid, (int)cred.gid, (int)cred.pid);
			refuse(cfd, "= 4 permission denied: this uid may not use batond's control socket\n");
			continue;
		}
		if (!admit(cred.uid, cred.pid, access)) {
			batond.control.refused_busy++;
			refuse(cfd, "= 1 batond is busy: too many control clients, try again\n");
			continue;
		}
		struct client *c = client_new(cfd, cred.uid, cred.pid, access);
		if (!c)
			continue;
		struct timeval rt = {CONTROL_REQUEST_TIMEOUT_MS / 1000, 0};
		evtimer_add(c->deadline, &rt);
		bufferevent_setwatermark(c->bev, EV_READ, 0, CTL_LINE_MAX + 1);
		bufferevent_enable(c->bev, EV_READ);
	}
}

static int set_group(const struct cfg_baton *cfg, char *err, size_t errlen)
{
	if (cfg->control_group[0]) {
		struct group *gr = getgrnam(cfg->control_group);
		if (!gr) {
			snprintf(err, errlen, "control_group: no such group '%s'", cfg->control_group);
			return -1;
		}
		ctl.group = gr->gr_gid;
		ctl.have_group = 1;
		ctl.group_write = cfg->control_group_write;
	}
	return 0;
}

static void poll_socket(void)
{
	ctl.ev = event_new(batond.base, ctl.fd, EV_READ | EV_PERSIST, on_accept, NULL);
	ctl.ev_retry = evtimer_new(batond.base, accept_again, NULL);
	ctl.ev_refused = evtimer_new(batond.base, refusals_due, NULL);
	if (!ctl.ev || !ctl.ev_retry || !ctl.ev_refused || event_add(ctl.ev, NULL) < 0)
		fatal("out of memory");
	arm_refusals_due(); /* a window a reexec carried over */
}

int control_open(const struct cfg_baton *cfg, char *err, size_t errlen)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};

	LIST_INIT(&ctl.clients);
	if (strlen(cfg->control) >= sizeof(un.sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", cfg->control);
		return -1;
	}
	if (set_group(cfg, err, errlen) < 0)
		return -1;
	strcpy(un.sun_path, cfg->control);
	/* Like systemd's RuntimeDirectory=: create the directory if it is the
	 * only thing missing (/run/baton on a fresh boot). */
	char dir[sizeof(un.sun_path)];
	strcpy(dir, un.sun_path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (mkdir(dir, 0755) == 0)
			log_info("created directory for the control socket path=%s", dir);
		else if (errno != EEXIST) {
			snprintf(err, errlen, "control socket directory %s: %s", dir, strerror(errno));
			return -1;
		}
	}
	if (listener_unix_reclaim(un.sun_path, "control", err, errlen) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* Made with no access, then opened up as configured. */
	if (listener_unix_bind(fd, un.sun_path, &ctl.dev, &ctl.ino, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	long long base_uid;
	listener_unix_base(un.sun_path, ctl.dev, ctl.ino, &base_uid, &ctl.base_gid);
	ctl.fd = fd;
	ctl.mode = cfg->control_mode;
	snprintf(ctl.path, sizeof(ctl.path), "%s", un.sun_path);
	char why[200];
	if (listener_unix_set(ctl.path, ctl.dev, ctl.ino, (uid_t)-1,
			      ctl.have_group ? ctl.group : (gid_t)-1, ctl.mode, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "control socket %s: %s", un.sun_path, why);
		control_close();
		return -1;
	}
	if (listen(fd, 64) < 0) {
		snprintf(err, errlen, "control socket %s: %s", un.sun_path, strerror(errno));
		control_close();
		return -1;
	}
	poll_socket();
	log_info("control socket path=%s mode=%04o%s%s", un.sun_path, cfg->control_mode,
		 ctl.have_group ? " group=" : "", ctl.have_group ? cfg->control_group : "");
	return 0;
}

void control_reconfigure(const struct cfg_baton *cfg)
{
	struct group *gr = cfg->control_group[0] ? getgrnam(cfg->control_group) : NULL;
	char why[200];

	/* Without control_group (any more): the group bind gave the file, so
	 * that a group removed from the config loses its access. */
	gid_t gid = gr ? gr->gr_gid : ctl.base_gid >= 0 ? (gid_t)ctl.base_gid : (gid_t)-1;

	ctl.have_group = gr != NULL;
	ctl.group = gr ? gr->gr_gid : 0;
	ctl.group_write = cfg->control_group_write;
	if (listener_unix_set(ctl.path, ctl.dev, ctl.ino, (uid_t)-1, gid, cfg->control_mode, why,
			      sizeof(why)) < 0) {
		log_warn("not changing control socket file path=%s reason=\"%s\"", ctl.path, why);
		return;
	}
	if (ctl.mode != cfg->control_mode)
		log_info("control socket mode=%04o path=%s", cfg->control_mode, ctl.path);
	ctl.mode = cfg->control_mode;
}

/* What is queued for c, best effort, without blocking. */
static void flush_now(struct client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char buf[4096];
	evbuffer_unfreeze(out, 1); /* bufferevent keeps its start frozen */
	ev_ssize_t n = evbuffer_copyout(out, buf, sizeof(buf));
	if (n > 0 && send(bufferevent_getfd(c->bev), buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("control: last answer lost: %s", strerror(errno));
}

void control_close(void)
{
	struct client *c;

	op_end_all(); /* their clients get the answer below */
	while ((c = LIST_FIRST(&ctl.clients))) {
		flush_now(c); /* answered clients get what is buffered, best effort */
		client_free(c);
	}
	if (ctl.ev)
		event_free(ctl.ev);
	ctl.ev = NULL;
	if (ctl.ev_retry)
		event_free(ctl.ev_retry);
	ctl.ev_retry = NULL;
	if (ctl.ev_refused)
		event_free(ctl.ev_refused);
	ctl.ev_refused = NULL;
	unsigned left_out = log_limit_close(&ctl.refusals, UINT64_MAX); /* whenever it was due */
	if (left_out) /* batond stops: said now or never */
		say_left_out(left_out);
	if (ctl.fd >= 0) {
		close(ctl.fd);
		ctl.fd = -1;
		listener_unix_unlink(ctl.path, ctl.dev, ctl.ino);
	}
}


void control_save(struct state_out *o, const struct reply *requester, int final)
{
	struct client *c;
	state_record(o, "control", 1);
	state_fd(o, "fd", ctl.fd);
	state_str(o, "path", ctl.path);
	state_u64(o, "dev", (uint64_t)ctl.dev);
	state_u64(o, "ino", (uint64_t)ctl.ino);
	state_u64(o, "mode", ctl.mode);
	state_i64(o, "base_gid", ctl.base_gid);
	state_u64(o, "refused_log.start_ms", ctl.refusals.start_ms);
	state_u64(o, "refused_log.lines", ctl.refusals.lines);
	state_u64(o, "refused_log.left_out", ctl.refusals.left_out);
	LIST_FOREACH(c, &ctl.clients, link) {
		if (!requester || c != requester->ctx) {
			if (final)
				flush_now(c); /* the others get what is theirs; the exec closes them */
			continue;
		}
		struct evbuffer *out = bufferevent_get_output(c->bev);
		size_t n = evbuffer_get_length(out);
		unsigned char *pending = evbuffer_pullup(out, (ev_ssize_t)n);
		state_record(o, "control_client", 1);
		state_fd(o, "fd", bufferevent_getfd(c->bev));
		state_u64(o, "uid", c->uid);
		state_i64(o, "pid", c->pid);
		state_u64(o, "full", c->access == ACCESS_FULL);
		state_bytes(o, "pending", pending ? (const char *)pending : "", pending ? n : 0);
	}
}

/* What the control record holds. */
struct ctl_rec {
	long long fd, base_gid; /* base_gid -1: absent (a writer that did not know it) */
	char path[sizeof(ctl.path)];
	uint64_t dev, ino, mode;
	struct log_limit refusals; /* the window of refusal lines under way */
};

static int parse_rec(const struct state_rec *r, struct ctl_rec *c, char *err, size_t errlen)
{
	long long v[3] = {0, 0, 0};
	static const char *const lim[] = {"refused_log.start_ms", "refused_log.lines",
					  "refused_log.left_out"};
	if (state_get_int(r, "fd", 0, INT_MAX, &c->fd, err, errlen) < 0 ||
	    state_get_str(r, "path", c->path, sizeof(c->path), err, errlen) < 0 ||
	    state_get_u64(r, "dev", &c->dev, err, errlen) < 0 ||
	    state_get_u64(r, "ino", &c->ino, err, errlen) < 0 ||
	    state_get_u64(r, "mode", &c->mode, err, errlen) < 0)
		return -1;
	c->base_gid = -1;
	if (state_get(r, "base_gid") &&
	    state_get_int(r, "base_gid", -1, UINT32_MAX - 1, &c->base_gid, err, errlen) < 0)
		return -1;
	if (c->mode > 07777) {
		snprintf(err, errlen, "control: bad mode %llu", (unsigned long long)c->mode);
		return -1;
	}
	for (int i = 0; i < 3; i++) /* absent: no window yet */
		if (state_get(r, lim[i]) &&
		    state_get_int(r, lim[i], 0, i == 0 ? INT64_MAX : UINT32_MAX, &v[i], err, errlen) < 0)
			return -1;
	c->refusals = ctl.refusals; /* burst and window: this build's */
	c->refusals.start_ms = (uint64_t)v[0];
	c->refusals.lines = (unsigned)v[1];
	c->refusals.left_out = (unsigned)v[2];
	return 0;
}

int control_check_rec(const struct state_rec *r, char *err, size_t errlen)
{
	struct ctl_rec c;
	return parse_rec(r, &c, err, errlen);
}

int control_adopt(const struct cfg_baton *cfg, const struct state_rec *r, char *err, size_t errlen)
{
	struct ctl_rec c;
	struct stat sb;

	LIST_INIT(&ctl.clients);
	if (set_group(cfg, err, errlen) < 0 || parse_rec(r, &c, err, errlen) < 0)
		return -1;
	if (strcmp(c.path, cfg->control) != 0) {
		snprintf(err, errlen, "control: the state's socket is %s, the config's %s", c.path,
			 cfg->control);
		return -1;
	}
	char bound[128];
	snprintf(bound, sizeof(bound), "unix:%s", c.path);
	if (listener_check_fd((int)c.fd, bound, err, errlen) < 0)
		return -1;
	if (lstat(c.path, &sb) < 0 || sb.st_dev != (dev_t)c.dev || sb.st_ino != (ino_t)c.ino)
		log_warn("control socket file path=%s is not the one batond bound any more; "
			 "it is left alone", c.path);
	memcpy(ctl.path, c.path, sizeof(ctl.path));
	ctl.fd = (int)c.fd;
	ctl.dev = (dev_t)c.dev;
	ctl.ino = (ino_t)c.ino;
	ctl.mode = (unsigned)c.mode;
	ctl.base_gid = c.base_gid;
	ctl.refusals = c.refusals; /* the monotonic clock goes on across the exec */
	poll_socket();
	return 0;
}

const struct reply *control_adopt_client(const struct state_rec *r, char *err, size_t errlen)
{
	long long fd, pid;
	uint64_t uid, full;
	struct stat sb;
	if (state_get_int(r, "fd", 0, INT_MAX, &fd, err, errlen) < 0 ||
	    state_get_u64(r, "uid", &uid, err, errlen) < 0 ||
	    state_get_int(r, "pid", 0, INT_MAX, &pid, err, errlen) < 0 ||
	    state_get_u64(r, "full", &full, err, errlen) < 0)
		return NULL;
	if (fstat((int)fd, &sb) < 0 || !S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "control_client: fd %lld is not a socket", fd);
		return NULL;
	}
	fd_set_nonblock((int)fd);
	struct client *c = client_new((int)fd, (uid_t)uid, (pid_t)pid, full ? ACCESS_FULL : ACCESS_READ);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->requested = 1;
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->f[i].key, "pending") == 0)
			evbuffer_add(bufferevent_get_output(c->bev), r->f[i].val, r->f[i].len);
	bufferevent_enable(c->bev, EV_WRITE);
	return &c->reply;
}
