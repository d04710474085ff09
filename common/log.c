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

static int open_log(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
	return fd;
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
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
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
