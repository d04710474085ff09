#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "baton";
static enum log_level log_level = LOGL_INFO;
static int log_fd = STDERR_FILENO;
static int log_journal; /* stderr is the journal: "<N>" prefixes */
static char log_path[PATH_MAX];

static const char *const names[] = {"debug", "info", "warn", "error"};
static const int syslog_prio[] = {7, 6, 4, 3};

/* Is stderr the journal stream systemd gave us ($JOURNAL_STREAM=dev:ino)? */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;

	if (!js || sscanf(js, "%llu:%llu%c", &dev, &ino, &end) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident)
{
	log_ident = ident;
	log_journal = stderr_is_journal();
}

/* 1, with the reason in why, if batond must not append to the file st is. */
static int refuse(const struct stat *st, char *why, size_t whylen)
{
	if (S_ISLNK(st->st_mode))
		snprintf(why, whylen, "is a symlink");
	else if (!S_ISREG(st->st_mode))
		snprintf(why, whylen, "not a regular file");
	else if (st->st_uid != 0 && st->st_uid != geteuid())
		snprintf(why, whylen, "owned by uid %u, not root or batond's user",
			 (unsigned)st->st_uid);
	else if (st->st_nlink > 1) /* a hard link to a file of root's */
		snprintf(why, whylen, "has %lu hard links", (unsigned long)st->st_nlink);
	else
		return 0;
	return 1;
}

int log_open_append(const char *path, char *why, size_t whylen)
{
	struct stat st;
	/* O_NONBLOCK: a FIFO planted at path must not block batond in open();
	 * it is refused below, and a regular file is made blocking again. */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
				    O_NOCTTY, 0640);
	if (fd < 0) {
		int e = errno;
		/* ELOOP: the last component is a symlink (O_NOFOLLOW); ENXIO: a
		 * FIFO without a reader, or a socket.  Say which, if it is so. */
		if ((e == ELOOP || e == ENXIO) && lstat(path, &st) == 0 && refuse(&st, why, whylen))
			return LOG_OPEN_REFUSED;
		snprintf(why, whylen, "%s", strerror(e));
		errno = e;
		return LOG_OPEN_FAILED;
	}
	int fl = -1;
	if (fstat(fd, &st) == 0) {
		if (refuse(&st, why, whylen)) {
			close(fd);
			return LOG_OPEN_REFUSED;
		}
		fl = fcntl(fd, F_GETFL);
	}
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		int e = errno;
		snprintf(why, whylen, "%s", strerror(e));
		close(fd);
		errno = e;
		return LOG_OPEN_FAILED;
	}
	return fd;
}

static int open_log(const char *path, char *err, size_t errlen)
{
	char why[128];
	int fd = log_open_append(path, why, sizeof(why));
	if (fd == LOG_OPEN_REFUSED)
		snprintf(err, errlen, "refusing log file path=%s reason=\"%s\"", path, why);
	else if (fd < 0)
		snprintf(err, errlen, "cannot open log file %s: %s", path, why);
	return fd < 0 ? -1 : fd;
}

int log_open_file(const char *path, char *err, size_t errlen)
{
	if (strlen(path) >= sizeof(log_path)) {
		snprintf(err, errlen, "log file path too long");
		return -1;
	}
	int fd = open_log(path, err, errlen);
	if (fd < 0)
		return -1;
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = fd;
	snprintf(log_path, sizeof(log_path), "%s", path);
	return 0;
}

int log_reopen(char *err, size_t errlen)
{
	if (!log_path[0])
		return 0;
	char path[sizeof(log_path)];
	snprintf(path, sizeof(path), "%s", log_path);
	return log_open_file(path, err, errlen);
}

const char *log_file_path(void)
{
	return log_path;
}

void log_close_file(void)
{
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = STDERR_FILENO;
	log_path[0] = '\0';
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

const char *log_level_name(enum log_level level)
{
	return names[level];
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left, s[0] >=
 * 0x80), or 0 if there is none (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < len; k++)
		if (s[k] < 0x80 || s[k] > 0xbf)
			return 0;
	return len;
}

size_t log_sanitize(char *dst, const char *src, size_t len)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0;
	/* o <= i throughout, so dst may be src: each byte is read first. */
	while (i < len) {
		unsigned char c = s[i];
		if (c < 0x80) {
			dst[o++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
			i++;
			continue;
		}
		size_t n = utf8_seq(s + i, len - i);
		if (n == 0 || (c == 0xc2 && s[i + 1] < 0xa0)) { /* not UTF-8, or C1 */
			dst[o++] = '?';
			i += n ? n : 1;
			continue;
		}
		memmove(dst + o, src + i, n);
		o += n;
		i += n;
	}
	return o;
}

static void vlog(enum log_level level, const char *fmt, va_list ap)
{
	int saved = errno;
	char line[2048], ts[32];
	struct timespec now;
	struct tm tm;

	int n;
	if (log_journal && log_fd == STDERR_FILENO) {
		/* journald adds the time, the process and its pid itself */
		n = snprintf(line, sizeof(line), "<%d>%s: ", syslog_prio[level], names[level]);
	} else {
		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%d] %s: ", ts,
			     now.tv_nsec / 1000000, log_ident, (int)getpid(), names[level]);
	}
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	if ((size_t)m > sizeof(line) - 2 - n)
		m = (int)(sizeof(line) - 2 - n);
	/* The message may carry what a worker or a client sent: one line,
	 * nothing a terminal would act on. */
	n += (int)log_sanitize(line + n, line + n, (size_t)m);
	line[n++] = '\n';
	/* One write per line so lines from several processes do not mix. */
	ssize_t w = write(log_fd, line, n);
	(void)w;
	errno = saved;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	if (level < log_level)
		return;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOGL_ERROR, fmt, ap);
	va_end(ap);
	if (log_fd != STDERR_FILENO) { /* whoever started us sees it too */
		log_close_file();
		va_start(ap, fmt);
		vlog(LOGL_ERROR, fmt, ap);
		va_end(ap);
	}
	exit(1);
}

int log_file_fd(void)
{
	return log_path[0] ? log_fd : -1;
}

void log_adopt_file(const char *path, int fd)
{
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = fd;
	snprintf(log_path, sizeof(log_path), "%s", path);
}

int log_limit_take(struct log_limit *l, uint64_t now_ms, unsigned *left_out)
{
	*left_out = 0;
	if (!l->start_ms || now_ms - l->start_ms >= l->window_ms) {
		*left_out = l->left_out;
		l->start_ms = now_ms ? now_ms : 1;
		l->lines = l->left_out = 0;
	}
	if (l->lines < l->burst) {
		l->lines++;
		return 1;
	}
	l->left_out++;
	return 0;
}

uint64_t log_limit_due_ms(const struct log_limit *l)
{
	return l->start_ms && l->left_out ? l->start_ms + l->window_ms : 0;
}

unsigned log_limit_close(struct log_limit *l, uint64_t now_ms)
{
	uint64_t due = log_limit_due_ms(l);
	if (!due || now_ms < due)
		return 0;
	unsigned n = l->left_out;
	l->start_ms = 0;
	l->lines = l->left_out = 0;
	return n;
}
