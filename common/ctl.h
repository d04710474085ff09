/*
 * The control protocol "baton/1", spoken on batond's control socket by
 * batonctl (or by `socat - UNIX-CONNECT:/run/baton/batond.sock`).
 *
 * Transport: a Unix stream socket.  The client sends exactly one request
 * line, then reads response lines until the server closes.  A client may
 * shut down its sending side after the request (socat does): it still
 * gets the answer.  Closing before a whole request line arrived ends the
 * exchange; closing while a long operation runs does not stop it.
 *
 * Request line:
 *
 *	baton/1 FORMAT COMMAND [ARG...]\n
 *
 * Tokens are separated by one or more spaces.  FORMAT is "text" or "json".
 * The whole line, its '\n' included, is at most CTL_LINE_MAX (1024) bytes,
 * with at most CTL_ARGS_MAX (16) tokens after FORMAT (the command and its
 * arguments).  Every byte before the '\n' is printable ASCII, 0x20 to 0x7e:
 * a tab, NUL, byte above 0x7e, or a '\r' before the '\n' is an error.
 *
 * Response lines, each ending in '\n' and each at most CTL_LINE_MAX bytes
 * with it; the first two bytes are the kind and a space, always:
 *
 *	> TEXT		progress while a long operation runs (batonctl: stderr)
 *	| TEXT		output (batonctl: stdout); with json, the "| " lines
 *			together form one JSON document
 *	= CODE TEXT	the last line; CODE (0-255) is batonctl's exit code,
 *			enum ctl_exit.  TEXT may be empty ("= 0" or "= 0 ").
 *			The server closes after it.
 *
 * Every command, its arguments and who may run it are in ctl_commands[].
 */
#ifndef BATON_CTL_H
#define BATON_CTL_H

#include <stddef.h>

#define CTL_VERSION "baton/1"
#define CTL_LINE_MAX 1024 /* a request or response line, '\n' included */
#define CTL_ARGS_MAX 16   /* tokens after FORMAT: the command and its args */

/* The CODE of the "=" line, and so batonctl's exit status. */
enum ctl_exit {
	CTL_OK = 0,
	CTL_FAILED = 1,      /* the operation failed */
	CTL_USAGE = 2,       /* bad command, arguments or name */
	CTL_NOT_RUNNING = 3, /* status: some worker is not RUNNING */
	CTL_DENIED = 4,      /* permission denied (or batond unreachable) */
};

struct ctl_request {
	int json;
	int argc;                     /* command + args, >= 1 */
	char *argv[CTL_ARGS_MAX + 1]; /* point into buf; NULL terminated */
	char buf[CTL_LINE_MAX];
};

/*
 * Parse one request line of len bytes, its '\n' included or not.
 * Returns 0, or -1 with the reason in err.
 */
int ctl_parse_request(const char *line, size_t len, struct ctl_request *req,
		      char *err, size_t errlen);
/*
 * Build the request line for argv[0..argc-1] (command first), '\n' and a
 * terminating NUL included, into buf.  Returns its length without the NUL,
 * or -1 with the reason in err: no command, too many words, an empty word,
 * a space or non-printable byte in one, or a line too long for the
 * protocol or for size.
 */
int ctl_format_request(int json, int argc, char *const argv[], char *buf,
		       size_t size, char *err, size_t errlen);
/*
 * Parse one response line, without its '\n'.  kind is '>', '|' or '=';
 * text points into line after "K " (or after "= CODE " for '=', where code
 * is set to 0..255; "" when TEXT is absent).  0, or -1 if malformed.
 */
int ctl_parse_response(const char *line, char *kind, int *code,
		       const char **text);

/* The command table: batonctl's usage, help and argument checks, batond's
 * dispatch and permissions. */
struct ctl_command {
	const char *name;
	int min_args, max_args; /* after the command; -1: up to CTL_ARGS_MAX - 1 */
	int read_only;          /* allowed for control_group members */
	int long_running;       /* answers when done, streams progress */
	const char *usage;      /* "scale NAME N" */
	const char *help;       /* one line */
};

extern const struct ctl_command ctl_commands[]; /* ends with {NULL} */

/* How every NAME argument is spelled, for help output. */
#define CTL_NAME_HELP "NAME is a program (web), one worker (web:1) or all."

/* The command called name, or NULL. */
const struct ctl_command *ctl_find(const char *name);
/* Check nargs (after the command) against the table: 0, or -1 with
 * "usage: batonctl scale NAME N" in err. */
int ctl_check_args(const struct ctl_command *c, int nargs, char *err,
		   size_t errlen);
/* "  scale NAME N        add workers or ..." for a help listing, no '\n';
 * returns as snprintf. */
int ctl_help_line(const struct ctl_command *c, char *buf, size_t size);
/*
 * Write s as a JSON string literal (quotes, '"' and '\\' escaped, bytes
 * below 0x20 and 0x7f as \u00XX, others as they are) at out, NUL
 * terminated.  Returns its length, snprintf-style: when that is >= size
 * the output was cut, never in the middle of an escape.
 */
size_t ctl_json_str(char *out, size_t size, const char *s);

#endif
