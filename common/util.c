#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int util_parse_int(const char *s, long long min, long long max,
		   long long *out)
{
	char *end;
	if (!*s || (*s != '-' && (*s < '0' || *s > '9')))
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int util_parse_duration(const char *s, uint64_t *ms)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (*end == '\0') {
		if (v != 0) /* a bare number is ambiguous: say the unit */
			return -1;
		*ms = 0;
		return 0;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			/* Cap at ~30 days to keep every sum far from overflow. */
			if (v > 30ULL * 86400000 / units[i].mult)
				return -1;
			*ms = v * units[i].mult;
			return 0;
		}
	}
	return -1;
}

void util_format_duration(uint64_t ms, char *buf, size_t size)
{
	if (ms == 0)
		snprintf(buf, size, "0");
	else if (ms % 3600000 == 0)
		snprintf(buf, size, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms % 60000 == 0)
		snprintf(buf, size, "%llum", (unsigned long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(buf, size, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(buf, size, "%llums", (unsigned long long)ms);
}

int util_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

int util_parse_mode(const char *s, unsigned *out)
{
	char *end;
	if (*s < '0' || *s > '7')
		return -1;
	errno = 0;
	unsigned long v = strtoul(s, &end, 8);
	if (errno || *end || v > 07777)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
	long long v;
	if (util_parse_int(s, 0, 65535, &v) || *s == '-')
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int addr_parse(const char *s, struct addr *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	if (strncmp(s, "unix:", 5) == 0) {
		const char *path = s + 5;
		struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;
		if (path[0] != '/') {
			snprintf(err, errlen, "unix socket path must be absolute: '%s'", path);
			return -1;
		}
		if (strlen(path) >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "unix socket path longer than %zu bytes",
				 sizeof(un->sun_path) - 1);
			return -1;
		}
		a->kind = ADDR_UNIX;
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, path);
		a->len = sizeof(*un);
		return 0;
	}

	const char *hp = s;
	if (strncmp(s, "tcp:", 4) == 0)
		hp = s + 4;
	else if (s[0] != '[') {
		snprintf(err, errlen,
			 "address must be tcp:HOST:PORT, [V6]:PORT or unix:/path, not '%s'", s);
		return -1;
	}

	char host[64];
	const char *port;
	if (hp[0] == '[') {
		const char *close = strchr(hp, ']');
		if (!close || close[1] != ':' || (size_t)(close - hp - 1) >= sizeof(host)) {
			snprintf(err, errlen, "bad IPv6 address '%s': want [V6]:PORT", s);
			return -1;
		}
		memcpy(host, hp + 1, close - hp - 1);
		host[close - hp - 1] = '\0';
		port = close + 2;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
			snprintf(err, errlen, "bad IPv6 address '%s'", host);
			return -1;
		}
		if (parse_port(port, &in6->sin6_port)) {
			snprintf(err, errlen, "bad port '%s' (0-65535)", port);
			return -1;
		}
		in6->sin6_port = htons(in6->sin6_port);
		in6->sin6_family = AF_INET6;
		a->len = sizeof(*in6);
		a->kind = ADDR_TCP;
		return 0;
	}

	const char *colon = strrchr(hp, ':');
	if (!colon || (size_t)(colon - hp) >= sizeof(host)) {
		snprintf(err, errlen, "bad address '%s': want tcp:HOST:PORT", s);
		return -1;
	}
	memcpy(host, hp, colon - hp);
	host[colon - hp] = '\0';
	port = colon + 1;
	struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
	if (strcmp(host, "*") == 0)
		in->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (strcmp(host, "localhost") == 0)
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
		snprintf(err, errlen, "bad IPv4 address '%s' (IPv6 goes in brackets)", host);
		return -1;
	}
	if (parse_port(port, &in->sin_port)) {
		snprintf(err, errlen, "bad port '%s' (0-65535)", port);
		return -1;
	}
	in->sin_port = htons(in->sin_port);
	in->sin_family = AF_INET;
	a->len = sizeof(*in);
	a->kind = ADDR_TCP;
	return 0;
}

/* Decimal digits of v at p; the number of them. */
static size_t put_dec(char *p, unsigned v)
{
	char t[10];
	size_t n = 0;
	do
		t[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < sizeof(t));
	for (size_t i = 0; i < n; i++)
		p[i] = t[n - 1 - i];
	return n;
}

/* The first len bytes of s into buf (size bytes), NUL-terminated, cut to fit. */
void copy_cut(char *buf, size_t size, const char *s, size_t len)
{
	if (!size)
		return;
	if (len >= size)
		len = size - 1;
	memcpy(buf, s, len);
	buf[len] = '\0';
}

/*
 * Called for every accepted connection: IPv4 is formatted by hand and IPv6
 * with inet_ntop alone, no printf.
 */
void addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
		 size_t size)
{
	char t[INET6_ADDRSTRLEN + 8];
	size_t n = 0;
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		const uint8_t *a = (const uint8_t *)&in->sin_addr;
		for (int i = 0; i < 4; i++) {
			n += put_dec(t + n, a[i]);
			t[n++] = i < 3 ? '.' : ':';
		}
		n += put_dec(t + n, ntohs(in->sin_port));
		copy_cut(buf, size, t, n);
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		t[0] = '[';
		inet_ntop(AF_INET6, &in6->sin6_addr, t + 1, INET6_ADDRSTRLEN);
		n = 1 + strlen(t + 1);
		t[n++] = ']';
		t[n++] = ':';
		n += put_dec(t + n, ntohs(in6->sin6_port));
		copy_cut(buf, size, t, n);
		break;
	}
	case AF_UNIX: {
		const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
		if (len > offsetof(struct sockaddr_un, sun_path) && un->sun_path[0])
			snprintf(buf, size, "unix:%.*s",
				 (int)(len - offsetof(struct sockaddr_un, sun_path)),
				 un->sun_path);
		else
			snprintf(buf, size, "unix");
		break;
	}
	default:
		snprintf(buf, size, "unknown");
	}
}

int fd_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

int fd_set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

void fd_close_all(int *fds, int n)
{
	static int no_range; /* close_range() failed with ENOSYS once */

	qsort(fds, (size_t)n, sizeof(*fds), cmp_int);
	for (int i = 0; i < n;) {
		int j = i + 1;
		while (j < n && fds[j] == fds[j - 1] + 1)
			j++;
		/* fds[i..j) are exactly the numbers fds[i]..fds[j-1]: the range
		 * holds no fd that is not ours. */
		if (j - i == 1 || no_range ||
		    close_range((unsigned)fds[i], (unsigned)fds[j - 1], 0) < 0) {
			if (j - i > 1 && errno == ENOSYS)
				no_range = 1;
			for (int k = i; k < j; k++)
				close(fds[k]);
		}
		i = j;
	}
}

int fd_open_std(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* The lowest free fd, so fd itself: the ones below are open. */
		int null = open("/dev/null", O_RDWR);
		if (null < 0)
			return -1;
		if (null != fd) {
			int rc = dup2(null, fd);
			close(null);
			if (rc < 0)
				return -1;
		}
	}
	return 0;
}

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int util_expand_here(const char *here, const char *in, char *out, size_t size)
{
	static const char tok[] = "%(here)s";
	size_t o = 0;
	while (*in) {
		const char *src = in;
		size_t n = 1;
		if (strncmp(in, tok, sizeof(tok) - 1) == 0) {
			src = here;
			n = strlen(here);
			in += sizeof(tok) - 1;
			/* here is a real path (no symlinks), so "/.." right after it
			 * is its parent and "/." itself: drop them from the text, so
			 * logs and status show the path, not etc/../run/x.sock. */
			for (;;) {
				if (in[0] == '/' && in[1] == '.' && in[2] == '.' &&
				    (in[3] == '/' || !in[3])) {
					while (n > 0 && src[n - 1] != '/')
						n--; /* its last component... */
					if (n > 0)
						n--; /* ...and the slash before it */
					in += 3;
				} else if (in[0] == '/' && in[1] == '.' && (in[2] == '/' || !in[2])) {
					in += 2;
				} else {
					break;
				}
			}
			if (n == 0 && *in != '/') {
				src = "/"; /* the root, and nothing follows with a slash */
				n = 1;
			}
		} else {
			in++;
		}
		if (o + n >= size)
			return -1;
		memcpy(out + o, src, n);
		o += n;
	}
	out[o] = '\0';
	return 0;
}

void util_describe_status(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exit=%d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "signal=%s", strsignal(WTERMSIG(status)));
	else
		snprintf(buf, size, "status=0x%x", status);
}
