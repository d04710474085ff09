#include "listener.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "activation.h"
#include "config_keys.h"
#include "state.h"
#include "batond.h"
#include "log.h"
#include "util.h"

struct listener_hooks listener_hooks;

#define EMFILE_RETRY_MS 100
#define SHORT_QUIET_MS 1000 /* an out-of-fds episode is over after this long without */

/* Is something listening on this unix path?  1 yes, 0 no (stale). */
static int unix_in_use(const struct sockaddr_un *un)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 1; /* cannot tell: do not remove it */
	int rc = connect(fd, (const struct sockaddr *)un, sizeof(*un));
	int err = errno;
	close(fd);
	if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
		return 1;
	return !(err == ECONNREFUSED || err == ENOENT);
}

/* path as a unix socket address; 0, or -1 with err when it is too long. */
static int unix_addr(const char *path, struct sockaddr_un *un, char *err, size_t errlen)
{
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(un->sun_path)) {
		snprintf(err, errlen, "%s: path too long for a unix socket", path);
		return -1;
	}
	strcpy(un->sun_path, path);
	return 0;
}

int listener_unix_reclaim(const char *path, const char *who, char *err, size_t errlen)
{
	struct sockaddr_un un;
	struct stat st;

	if (unix_addr(path, &un, err, errlen) < 0)
		return -1;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	if (unix_in_use(&un)) {
		snprintf(err, errlen, "%s is in use by another process", path);
		return -1;
	}
	if (unlink(path) < 0) {
		snprintf(err, errlen, "cannot remove stale %s: %s", path, strerror(errno));
		return -1;
	}
	log_info("removed stale socket file %s path=%s", who, path);
	return 0;
}

void listener_unix_unlink(const char *path, dev_t dev, ino_t ino)
{
	struct stat st;
	/* Only remove the file if it is still ours, not a successor's. */
	if (lstat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino)
		unlink(path);
}

/* The file at path itself, never a symlink's target: an O_PATH fd and its
 * stat, or -1 with errno. */
static int unix_file_open(const char *path, struct stat *st)
{
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static const char *file_kind(mode_t mode)
{
	return S_ISLNK(mode) ? "a symlink" : S_ISREG(mode) ? "a regular file" :
	       S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO" :
	       S_ISSOCK(mode) ? "a socket" : "a device";
}

int listener_unix_bind(int fd, const char *path, dev_t *dev, ino_t *ino, char *err, size_t errlen)
{
	struct sockaddr_un un;
	struct stat st;

	if (unix_addr(path, &un, err, errlen) < 0)
		return -1;
	/* bind(2) gives the file the socket inode's mode less the umask (a
	 * default ACL replaces the umask, not that mode): shut both. */
	if (fchmod(fd, 0) < 0) {
		snprintf(err, errlen, "socket for %s: fchmod: %s", path, strerror(errno));
		return -1;
	}
	mode_t old = umask(0777);
	int rc = bind(fd, (const struct sockaddr *)&un, sizeof(un));
	umask(old);
	if (rc < 0) {
		snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
		return -1;
	}
	int pf = unix_file_open(path, &st);
	if (pf < 0) {
		snprintf(err, errlen, "%s right after bind: %s", path, strerror(errno));
		return -1;
	}
	close(pf);
	/* Whoever can write the directory may have swapped it already: only a
	 * socket of ours with mode 0 is the file bind made. */
	if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 07777)) {
		snprintf(err, errlen, "%s was replaced right after bind: it is %s owned by uid %d, mode %04o",
			 path, file_kind(st.st_mode), (int)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	*dev = st.st_dev;
	*ino = st.st_ino;
	return 0;
}

int listener_unix_set(const char *path, dev_t dev, ino_t ino, uid_t uid, gid_t gid, mode_t mode,
		      char *err, size_t errlen)
{
	struct stat st;
	char proc[40];

	int fd = unix_file_open(path, &st);
	if (fd < 0) {
		snprintf(err, errlen, "%s", errno == ENOENT ? "is gone" : strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode) || st.st_dev != dev || st.st_ino != ino) {
		if (S_ISSOCK(st.st_mode))
			snprintf(err, errlen, "is another socket, not the one batond bound");
		else
			snprintf(err, errlen, "is %s, not the socket batond bound", file_kind(st.st_mode));
		close(fd);
		return -1;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0) {
		snprintf(err, errlen, "chown: %s", strerror(errno));
		close(fd);
		return -1;
	}
	/* fchmod(2) refuses an O_PATH fd; its /proc link is the checked file
	 * itself, not the path looked up again. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (chmod(proc, mode) < 0) {
		snprintf(err, errlen, "chmod %s: %s", proc, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void listener_unix_base(const char *path, dev_t dev, ino_t ino, long long *uid, long long *gid)
{
	struct stat st;
	int fd = unix_file_open(path, &st);

	*uid = *gid = -1;
	if (fd < 0)
		return;
	if (S_ISSOCK(st.st_mode) && st.st_dev == dev && st.st_ino == ino) {
		*uid = st.st_uid;
		*gid = st.st_gid;
	}
	close(fd);
}

/* The configured owner, (uid_t)-1 and (gid_t)-1 where it names none. */
static int unix_owner(const struct cfg_listener *cfg, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	char user[sizeof(cfg->owner)];

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (!cfg->owner[0])
		return 0;
	snprintf(user, sizeof(user), "%s", cfg->owner);
	char *group = strchr(user, ':');
	if (group)
		*group++ = '\0';
	struct passwd *pw = user[0] ? getpwnam(user) : NULL;
	struct group *gr = group ? getgrnam(group) : NULL;
	if ((user[0] && !pw) || (group && !gr)) {
		snprintf(err, errlen, "owner %s: no such user or group", cfg->owner);
		return -1;
	}
	if (pw)
		*uid = pw->pw_uid;
	if (gr)
		*gid = gr->gr_gid;
	return 0;
}

static int unix_prepare(struct listener *l, char *err, size_t errlen)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)&l->cfg.addr.ss;
	char who[64];
	snprintf(who, sizeof(who), "listener=%s", l->cfg.name);
	return listener_unix_reclaim(un->sun_path, who, err, errlen);
}

/* Owner and mode as configured, on the socket file we bound only; -1
 * with the reason (which does not name the path) in why. */
static int unix_apply(const struct listener *l, char *why, size_t whylen)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)&l->cfg.addr.ss;
	uid_t uid;
	gid_t gid;

	if (unix_owner(&l->cfg, &uid, &gid, why, whylen) < 0)
		return -1;
	/* Not configured (any more): the owner bind gave it, so that an owner
	 * removed from the config by a reload loses its access. */
	if (uid == (uid_t)-1 && l->base_uid >= 0)
		uid = (uid_t)l->base_uid;
	if (gid == (gid_t)-1 && l->base_gid >= 0)
		gid = (gid_t)l->base_gid;
	return listener_unix_set(un->sun_path, l->dev, l->ino, uid, gid, l->cfg.mode, why, whylen);
}

/* The fields of struct tcp_base, in order: "tcp_base.NAME" in the state. */
static const char *const tcp_base_names[] = {"nodelay", "keepalive",    "idle",        "intvl",
					     "cnt",     "user_timeout", "defer_accept"};
#define TCP_BASE_N (int)(sizeof(tcp_base_names) / sizeof(tcp_base_names[0]))
_Static_assert(sizeof(struct tcp_base) == sizeof(tcp_base_names) / sizeof(tcp_base_names[0]) * sizeof(int),
	       "struct tcp_base and tcp_base_names disagree");

/* Seconds for an option the kernel takes in seconds: ms rounded up, at least 1. */
static int secs(uint64_t ms)
{
	return (int)((ms + 999) / 1000);
}

static void set_opt(const struct listener *l, int level, int opt, const char *name, int v)
{
	if (setsockopt(l->fd, level, opt, &v, sizeof(v)) < 0)
		log_warn("listener=%s: cannot set %s=%d: %s", l->cfg.name, name, v, strerror(errno));
}

/* What the socket had before batond set anything: the system's defaults,
 * or what systemd set on a socket it passed. */
static void tcp_base_read(struct listener *l)
{
	struct tcp_base *b = &l->tcp_base;
	const struct {
		int level, opt;
		int *v;
	} o[] = {
		{IPPROTO_TCP, TCP_NODELAY, &b->nodelay},   {SOL_SOCKET, SO_KEEPALIVE, &b->keepalive},
		{IPPROTO_TCP, TCP_KEEPIDLE, &b->idle},     {IPPROTO_TCP, TCP_KEEPINTVL, &b->intvl},
		{IPPROTO_TCP, TCP_KEEPCNT, &b->cnt},       {IPPROTO_TCP, TCP_USER_TIMEOUT, &b->user_timeout},
		{IPPROTO_TCP, TCP_DEFER_ACCEPT, &b->defer_accept},
	};
	for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++) {
		socklen_t len = sizeof(int);
		if (getsockopt(l->fd, o[i].level, o[i].opt, o[i].v, &len) < 0)
			*o[i].v = -1; /* unknown: never set back */
	}
}

/*
 * Linux copies TCP_NODELAY, SO_KEEPALIVE, the keepalive timings and
 * TCP_USER_TIMEOUT from a listening socket to every socket it accepts, so
 * they are set once on the listener (and again on a reload), not on each
 * connection: the configured value, or the socket's own (tcp_base) for
 * what is not configured.  TCP_DEFER_ACCEPT is the listener's own.
 */
static void tcp_options(const struct listener *l)
{
	const struct cfg_listener *c = &l->cfg;
	const struct tcp_base *b = &l->tcp_base;
	int ka = c->tcp_keepalive;

	if (c->tcp_nodelay || b->nodelay >= 0)
		set_opt(l, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", c->tcp_nodelay ? 1 : b->nodelay);
	if (ka || b->keepalive >= 0)
		set_opt(l, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", ka ? 1 : b->keepalive);
	if ((ka && c->tcp_keepidle) || b->idle >= 0)
		set_opt(l, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE",
			ka && c->tcp_keepidle ? secs(c->tcp_keepidle) : b->idle);
	if ((ka && c->tcp_keepintvl) || b->intvl >= 0)
		set_opt(l, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL",
			ka && c->tcp_keepintvl ? secs(c->tcp_keepintvl) : b->intvl);
	if ((ka && c->tcp_keepcnt) || b->cnt >= 0)
		set_opt(l, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT",
			ka && c->tcp_keepcnt ? (int)c->tcp_keepcnt : b->cnt);
	if (c->tcp_user_timeout || b->user_timeout >= 0)
		set_opt(l, IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT",
			c->tcp_user_timeout ? (int)c->tcp_user_timeout : b->user_timeout);
	/* Not copied to accepted sockets: it holds connections back in the
	 * listener until their first data, and a reload changes it at once. */
	if (c->tcp_defer_accept || b->defer_accept >= 0)
		set_opt(l, IPPROTO_TCP, TCP_DEFER_ACCEPT, "TCP_DEFER_ACCEPT",
			c->tcp_defer_accept ? secs(c->tcp_defer_accept) : b->defer_accept);
}

static void retry_accept(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	(void)fd;
	(void)what;
	l->out_of_fds = 0;
	if (listener_hooks.resume)
		listener_hooks.resume(l);
}

static void accept_ready(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	if (listener_hooks.accept)
		listener_hooks.accept(arg);
}

/* An out-of-fds episode is over once SHORT_QUIET_MS passed since its last
 * failed accept: said when the next accept, good or failed, notices. */
static void short_over(struct listener *l, uint64_t now)
{
	if (!l->short_since_ms || now - l->short_last_ms < SHORT_QUIET_MS)
		return;
	log_info("accept resumed listener=%s out_of_fds_ms=%llu failures=%u", l->cfg.name,
		 (unsigned long long)(l->short_last_ms - l->short_since_ms), l->short_failures);
	l->short_since_ms = 0;
}

int listener_accept(struct listener *l, char *peer, size_t peerlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	do {
		len = sizeof(ss);
		fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	} while (fd < 0 && (errno == EINTR || errno == ECONNABORTED || errno == EPROTO));
	if (fd < 0) {
		int e = errno;
		if (e == EAGAIN || e == EWOULDBLOCK)
			return -1;
		if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
			/* Leave clients in the backlog and retry soon, without
			 * spinning.  Logged once per episode (accepts may succeed
			 * now and then within one: an ACK frees an fd), and once
			 * more when it is over. */
			uint64_t now = now_ms();
			short_over(l, now);
			if (!l->short_since_ms) {
				log_warn("accept paused listener=%s error=\"%s\" retry_ms=%d",
					 l->cfg.name, strerror(e), EMFILE_RETRY_MS);
				l->short_since_ms = now;
				l->short_failures = 0;
			}
			l->short_failures++;
			l->short_last_ms = now;
			l->out_of_fds = 1;
			listener_set_paused(l, 1);
			struct timeval tv = {0, EMFILE_RETRY_MS * 1000};
			evtimer_add(l->ev_retry, &tv);
		} else {
			log_error("accept failed listener=%s error=\"%s\"", l->cfg.name, strerror(e));
		}
		errno = e;
		return -1;
	}
	if (l->short_since_ms)
		short_over(l, now_ms());
	if (l->tcp) {
		addr_format((struct sockaddr *)&ss, len, peer, peerlen);
	} else {
		snprintf(peer, peerlen, "unix");
	}
	return fd;
}

/* The socket is bound and listening: note where, get ready to poll.
 * adopted: it crossed a reexec, its tcp_base is the saved one. */
static void listener_ready(struct listener *l, int adopted)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(l->fd, (struct sockaddr *)&ss, &len) == 0) {
		addr_format((struct sockaddr *)&ss, len, l->bound, sizeof(l->bound));
		l->tcp = ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
	}
	if (l->tcp) {
		if (!adopted)
			tcp_base_read(l);
		tcp_options(l);
	}
	l->ev = event_new(batond.base, l->fd, EV_READ | EV_PERSIST, accept_ready, l);
	l->ev_retry = evtimer_new(batond.base, retry_accept, l);
	if (!l->ev || !l->ev_retry)
		fatal("out of memory");
	l->paused = 1;
	if (!adopted)
		log_info("listening listener=%s address=%s bound=%s program=%s backlog=%lld",
			 l->cfg.name, l->cfg.address, l->bound, l->cfg.program, l->cfg.backlog);
}

/* Socket activation: adopt the listening socket systemd passed. */
static int systemd_open(struct listener *l, char *err, size_t errlen)
{
	int fd = activation_take(l->cfg.systemd_name, err, errlen);
	if (fd < 0)
		return -1;
	if (fd_set_nonblock(fd) < 0) {
		snprintf(err, errlen, "systemd socket '%s': %s", l->cfg.systemd_name, strerror(errno));
		return -1;
	}
	l->fd = fd;
	listener_ready(l, 0); /* its backlog is systemd's (Backlog=) */
	return 0;
}

int listener_open(struct listener *l, char *err, size_t errlen)
{
	const struct addr *a = &l->cfg.addr;
	int family = a->ss.ss_family, one = 1;

	l->fd = -1;
	if (a->kind == ADDR_SYSTEMD)
		return systemd_open(l, err, errlen);
	if (a->kind == ADDR_UNIX && unix_prepare(l, err, errlen) < 0)
		return -1;
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (a->kind == ADDR_TCP)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (a->kind == ADDR_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)&a->ss;
		if (listener_unix_bind(fd, un->sun_path, &l->dev, &l->ino, err, errlen) < 0) {
			close(fd);
			return -1;
		}
		listener_unix_base(un->sun_path, l->dev, l->ino, &l->base_uid, &l->base_gid);
	} else if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
		snprintf(err, errlen, "bind %s: %s", l->cfg.address, strerror(errno));
		close(fd);
		return -1;
	}
	l->fd = fd;
	if (a->kind == ADDR_UNIX) {
		char why[200];
		if (unix_apply(l, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "socket file %s: %s",
				 ((const struct sockaddr_un *)&a->ss)->sun_path, why);
			listener_close(l);
			return -1;
		}
	}
	if (listen(fd, (int)l->cfg.backlog) < 0) {
		snprintf(err, errlen, "listen %s: %s", l->cfg.address, strerror(errno));
		listener_close(l);
		return -1;
	}
	listener_ready(l, 0);
	return 0;
}

struct listener *listener_new(const struct cfg_listener *cfg, char *err, size_t errlen)
{
	struct listener *l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->cfg = *cfg;
	l->base_uid = l->base_gid = -1;
	if (listener_open(l, err, errlen) < 0) {
		free(l);
		return NULL;
	}
	return l;
}

void listener_free(struct listener *l)
{
	listener_close(l);
	free(l);
}

void listener_set_paused(struct listener *l, int paused)
{
	if (l->fd < 0)
		return;
	paused = paused || l->out_of_fds;
	if (paused == l->paused)
		return;
	l->paused = paused;
	if (paused) {
		event_del(l->ev);
		l->pauses++;
	} else {
		event_add(l->ev, NULL);
	}
	log_debug("listener %s listener=%s", paused ? "paused" : "resumed", l->cfg.name);
}

void listener_close(struct listener *l)
{
	if (l->ev)
		event_free(l->ev);
	if (l->ev_retry)
		event_free(l->ev_retry);
	l->ev = l->ev_retry = NULL;
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	if (l->cfg.addr.kind == ADDR_UNIX && l->ino) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)&l->cfg.addr.ss;
		listener_unix_unlink(un->sun_path, l->dev, l->ino);
		l->ino = 0;
	}
}

void listener_update(struct listener *l, const struct cfg_listener *cfg)
{
	struct cfg_listener old = l->cfg;
	l->cfg = *cfg;
	l->cfg.addr = old.addr; /* the same address: keep what is bound */
	if (l->fd >= 0 && listen(l->fd, (int)cfg->backlog) < 0)
		log_warn("listener=%s: cannot change backlog: %s", l->cfg.name, strerror(errno));
	if (l->fd >= 0 && l->tcp)
		tcp_options(l); /* for the connections accepted from now on */
	if (old.addr.kind == ADDR_UNIX) {
		char why[200];
		if (unix_apply(l, why, sizeof(why)) < 0) {
			log_warn("not changing socket file listener=%s path=%s reason=\"%s\"", l->cfg.name,
				 ((const struct sockaddr_un *)&old.addr.ss)->sun_path, why);
			/* What the file has; the next reload tries again. */
			l->cfg.mode = old.mode;
			memcpy(l->cfg.owner, old.owner, sizeof(l->cfg.owner));
		}
	}
}

int listener_check_fd(int fd, const char *bound, char *err, size_t errlen)
{
	struct stat sb;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss), ol = sizeof(int);
	int type = 0, acc = 0;
	char got[80];

	if (fstat(fd, &sb) < 0 || !S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "fd %d is not a socket", fd);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ol) < 0 || type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &ol) < 0 || !acc) {
		snprintf(err, errlen, "fd %d is not a listening stream socket", fd);
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		snprintf(err, errlen, "fd %d: getsockname: %s", fd, strerror(errno));
		return -1;
	}
	addr_format((struct sockaddr *)&ss, len, got, sizeof(got));
	if (strcmp(got, bound) != 0) {
		snprintf(err, errlen, "fd %d is bound to %s, the state says %s", fd, got, bound);
		return -1;
	}
	return fd_set_nonblock(fd);
}

void listener_save(const struct listener *l, struct state_out *o)
{
	state_record(o, "listener", 1);
	state_str(o, "name", l->cfg.name);
	config_save_section(o, S_LISTENER, &l->cfg);
	state_fd(o, "fd", l->fd);
	state_str(o, "bound", l->bound);
	state_u64(o, "dev", (uint64_t)l->dev);
	state_u64(o, "ino", (uint64_t)l->ino);
	state_i64(o, "base_uid", l->base_uid);
	state_i64(o, "base_gid", l->base_gid);
	state_u64(o, "accepted", l->accepted);
	state_u64(o, "pauses", l->pauses);
	const int *b = &l->tcp_base.nodelay;
	for (int i = 0; i < TCP_BASE_N; i++) {
		char key[32];
		snprintf(key, sizeof(key), "tcp_base.%s", tcp_base_names[i]);
		state_i64(o, key, b[i]);
	}
}

/* A listener record's fields into l, nothing adopted yet: its fd (in
 * *fd), dev and ino as saved. */
static int parse_rec(const struct state_rec *r, struct listener *l, long long *fd, uint64_t *dev,
		     uint64_t *ino, char *err, size_t errlen)
{
	long long v;

	*dev = *ino = 0;
	if (state_get_str(r, "name", l->cfg.name, sizeof(l->cfg.name), err, errlen) < 0 ||
	    config_restore_section(r, S_LISTENER, &l->cfg, err, errlen) < 0 ||
	    state_get_int(r, "fd", 0, INT_MAX, fd, err, errlen) < 0 ||
	    state_get_str(r, "bound", l->bound, sizeof(l->bound), err, errlen) < 0 ||
	    state_opt_u64(r, "dev", dev, err, errlen) < 0 ||
	    state_opt_u64(r, "ino", ino, err, errlen) < 0 ||
	    state_opt_u64(r, "accepted", &l->accepted, err, errlen) < 0 ||
	    state_opt_u64(r, "pauses", &l->pauses, err, errlen) < 0)
		return -1;
	l->base_uid = l->base_gid = -1; /* absent: a writer that did not know */
	if ((state_get(r, "base_uid") &&
	     state_get_int(r, "base_uid", -1, UINT32_MAX - 1, &l->base_uid, err, errlen) < 0) ||
	    (state_get(r, "base_gid") &&
	     state_get_int(r, "base_gid", -1, UINT32_MAX - 1, &l->base_gid, err, errlen) < 0))
		return -1;
	int *b = &l->tcp_base.nodelay;
	for (int i = 0; i < TCP_BASE_N; i++) {
		char key[32];
		snprintf(key, sizeof(key), "tcp_base.%s", tcp_base_names[i]);
		b[i] = -1; /* absent (an older writer): unknown, never set back */
		if (state_get(r, key)) {
			if (state_get_int(r, key, -1, INT_MAX, &v, err, errlen) < 0)
				return -1;
			b[i] = (int)v;
		}
	}
	return 0;
}

int listener_check_rec(const struct state_rec *r, char *err, size_t errlen)
{
	struct listener l;
	long long fd;
	uint64_t dev, ino;
	memset(&l, 0, sizeof(l));
	return parse_rec(r, &l, &fd, &dev, &ino, err, errlen);
}

struct listener *listener_adopt(const struct state_rec *r, char *err, size_t errlen)
{
	struct listener *l = calloc(1, sizeof(*l));
	long long fd;
	uint64_t dev, ino;

	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->fd = -1;
	if (parse_rec(r, l, &fd, &dev, &ino, err, errlen) < 0 ||
	    listener_check_fd((int)fd, l->bound, err, errlen) < 0) {
		free(l);
		return NULL;
	}
	l->fd = (int)fd;
	l->dev = (dev_t)dev;
	l->ino = (ino_t)ino;
	if (!state_get(r, "tcp_base.defer_accept")) {
		/* A writer that did not know the option never set it: the
		 * socket still has its own value. */
		socklen_t len = sizeof(int);
		if (getsockopt(l->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &l->tcp_base.defer_accept, &len) < 0)
			l->tcp_base.defer_accept = -1;
	}
	listener_ready(l, 1);
	return l;
}
