/* Logging to stderr: one line per event, a message then key=value fields. */
#ifndef BATON_LOG_H
#define BATON_LOG_H

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARN, LOGL_ERROR };

void log_init(const char *ident);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "debug", "info", "warn" or "error"; 0 or -1. */
int log_parse_level(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

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
