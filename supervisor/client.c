#include "client.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

void client_die(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("batonctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

void client_flush(FILE *f)
{
	if (fflush(f) == 0)
		return;
	/* A reader that went away (batonctl status | head -1) needs no
	 * message; the operation's outcome is then unknown: exit 1. */
	if (errno != EPIPE)
		fprintf(stderr, "batonctl: write error: %s\n", strerror(errno));
	exit(CTL_FAILED);
}

int client_dial(const char *path, int *code, char *err, size_t errlen)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};

	if (strlen(path) >= sizeof(un.sun_path)) {
		*code = CTL_USAGE;
		snprintf(err, errlen, "socket path longer than %zu bytes: %s",
			 sizeof(un.sun_path) - 1, path);
		return -1;
	}
	strcpy(un.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*code = CTL_FAILED;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	while (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		if (errno == EINTR)
			continue;
		*code = CTL_DENIED;
		if (errno == EACCES || errno == EPERM)
			snprintf(err, errlen, "permission denied on %s", path);
		else
			snprintf(err, errlen, "cannot reach batond at %s: %s%s", path, strerror(errno),
				 errno == ENOENT || errno == ECONNREFUSED ? " (is it running?)" : "");
		close(fd);
		return -1;
	}
	return fd;
}

static int malformed(struct client_exchange *x, const char *line, size_t len)
{
	char text[400];
	size_t o = 0;

	/* Unprintable bytes as \xNN, at most 80 of them. */
	for (size_t i = 0; i < len && i < 80; i++) {
		unsigned char c = (unsigned char)line[i];
		o += (size_t)snprintf(text + o, sizeof(text) - o,
				      c >= 0x20 && c <= 0x7e ? "%c" : "\\x%02x", c);
	}
	snprintf(x->err, sizeof(x->err), "malformed response from batond: '%s%s'", text,
		 len > 80 ? "..." : "");
	return -1;
}

/* Send the whole request: 0, or -1 with the reason in x->err.  A peer
 * that closed early may have answered already (permission denied, say),
 * so that is left for the reader. */
static int send_request(struct client_exchange *x, int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return 0;
		if (n < 0) {
			snprintf(x->err, sizeof(x->err), "sending to batond: %s", strerror(errno));
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Handle the complete lines in buf[0..*have): 0 to read on, 1 with the
 * final line's code in *code, or -1 (malformed; the reason in x->err). */
static int take_lines(struct client_exchange *x, char *buf, size_t *have, int *code)
{
	char *start = buf, *nl;

	while ((nl = memchr(start, '\n', *have - (size_t)(start - buf)))) {
		char kind;
		const char *text;
		size_t len = (size_t)(nl - start);
		*nl = '\0';
		if (memchr(start, '\0', len) || ctl_parse_response(start, &kind, code, &text))
			return malformed(x, start, len);
		if (kind == '=') {
			snprintf(x->final, sizeof(x->final), "%s", text);
			return 1;
		}
		x->line(x, kind, text);
		start = nl + 1;
	}
	*have -= (size_t)(start - buf);
	memmove(buf, start, *have);
	/* A full buffer and no '\n': the line is over CTL_LINE_MAX. */
	if (*have == CTL_LINE_MAX)
		return malformed(x, buf, *have);
	return 0;
}

static int exchange(struct client_exchange *x, int fd, const char *req, size_t len)
{
	char buf[CTL_LINE_MAX + 1];
	size_t have = 0;

	if (send_request(x, fd, req, len) < 0)
		return -1;
	for (;;) {
		int wait = -1;
		if (x->deadline) {
			uint64_t now = now_ms();
			if (now >= x->deadline) {
				snprintf(x->err, sizeof(x->err), "no answer within %lld s", x->timeout);
				return -1;
			}
			wait = x->deadline - now > INT_MAX ? INT_MAX : (int)(x->deadline - now);
		}
		struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN},
					{.fd = STDIN_FILENO, .events = POLLIN}};
		int rc = poll(pfd, x->keys ? 2 : 1, wait);
		if (rc < 0 && errno != EINTR) {
			snprintf(x->err, sizeof(x->err), "poll: %s", strerror(errno));
			return -1;
		}
		if (rc > 0 && x->keys && pfd[1].revents && x->keys())
			return -2;
		if (rc <= 0 || !pfd[0].revents)
			continue;

		ssize_t n = recv(fd, buf + have, CTL_LINE_MAX - have, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0 && errno != ECONNRESET) {
			snprintf(x->err, sizeof(x->err), "reading from batond: %s", strerror(errno));
			return -1;
		}
		if (n <= 0) {
			snprintf(x->err, sizeof(x->err), "batond closed the connection before answering");
			return -1;
		}
		have += (size_t)n;
		int code, done = take_lines(x, buf, &have, &code);
		if (done)
			return done < 0 ? -1 : code;
	}
}

int client_exchange(struct client_exchange *x, int fd, const char *req, size_t len)
{
	int rc = exchange(x, fd, req, len);
	close(fd);
	return rc;
}
