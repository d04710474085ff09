/*
 * Logging: one line per event, a message then key=value fields, to stderr
 * or to a log file.  When stderr is the systemd journal ($JOURNAL_STREAM
 * names it) lines carry a "<N>" syslog priority prefix instead of a
 * timestamp, so journald records the level.
 */
#ifndef BATON_LOG_H
#define BATON_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARN, LOGL_ERROR };

void log_init(const char *ident);
/* Log to path (appending, created 0640, opened by log_open_append()) instead
 * of stderr; reopening the same path again (SIGUSR1, after logrotate moved
 * it) is log_reopen().  0, or -1 with err; on failure the previous
 * destination stays. */
int log_open_file(const char *path, char *err, size_t errlen);
int log_reopen(char *err, size_t errlen);
/* The file lines go to, or "" for stderr. */
const char *log_file_path(void);
/* Back to stderr (closes the file). */
void log_close_file(void);
/* The log file's fd (-1: logging to stderr), and taking one over (reexec). */
int log_file_fd(void);
void log_adopt_file(const char *path, int fd);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "debug", "info", "warn" or "error"; 0 or -1. */
int log_parse_level(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

/*
 * Open path to append log lines to (batond's log, a worker's output file).
 * batond often runs as root and the directory may be writable by a worker's
 * user, who could plant a symlink or a hard link to a file of root's there:
 * so the last component is never followed if it is a symlink, and only a
 * regular file with one link, owned by root or by our effective uid, is
 * taken.  A missing file is created 0640.  Returns the fd (close-on-exec,
 * appending), LOG_OPEN_FAILED with errno and strerror(errno) in why, or
 * LOG_OPEN_REFUSED with the reason in why ("is a symlink", "not a regular
 * file", "has 2 hard links", "owned by uid 65534, not root or batond's
 * user").
 */
#define LOG_OPEN_FAILED (-1)
#define LOG_OPEN_REFUSED (-2)
int log_open_append(const char *path, char *why, size_t whylen);

/*
 * Copy len bytes of src to dst (which may be src) as text that cannot break
 * a log line or drive a terminal; returns the new length (never more than
 * len).  The text is taken as UTF-8: tab, printable ASCII and well-formed
 * UTF-8 sequences stay; the other C0 controls and DEL, every byte that is
 * not part of a well-formed sequence (a stray 0x80-0xbf, a truncated,
 * overlong or surrogate sequence, 0xf5-0xff), and the C1 controls
 * U+0080-U+009F (0xc2 0x80-0x9f) become one '?' each.  So a raw C1 byte of
 * an 8-bit terminal (0x9b, CSI) is replaced, and "€" (0xe2 0x82 0xac),
 * whose continuation bytes fall in the same range, is kept.
 */
size_t log_sanitize(char *dst, const char *src, size_t len);

/*
 * For lines a peer can cause at will (a refused client): at most burst
 * lines per window_ms; the rest are counted, not logged.  A window starts
 * at the first line after the previous one ended.
 */
struct log_limit {
	unsigned burst;
	uint64_t window_ms;
	uint64_t start_ms; /* 0: no window yet */
	unsigned lines;	   /* logged in this window */
	unsigned left_out; /* counted, not logged, in this window */
};
/* 1: log this line; 0: leave it out (counted).  *left_out: how many the
 * window that just ended left out, to say now; 0 when none, or when still
 * in the same window. */
int log_limit_take(struct log_limit *l, uint64_t now_ms, unsigned *left_out);
/* When the window under way ends (a time of now_ms's clock), or 0 when
 * nothing was left out in it: then there is nothing to say at its end. */
uint64_t log_limit_due_ms(const struct log_limit *l);
/* At or after log_limit_due_ms(): how many the window left out, to say
 * now, and the window is closed (the next line opens a new one).  0, and
 * nothing changes, before that time or when nothing was left out. */
unsigned log_limit_close(struct log_limit *l, uint64_t now_ms);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Log and exit(1): start-up errors and broken invariants only. */
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOGL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)

#endif
