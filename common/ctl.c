#include "ctl.h"

#include <stdio.h>
#include <string.h>

const struct ctl_command ctl_commands[] = {
	{"status", 0, -1, 1, 0, "status [NAME...]",
	 "one line per worker, then listeners; exit 3 if a worker is not RUNNING"},
	{"start", 1, 1, 0, 1, "start NAME",
	 "start stopped, exited or FATAL workers and wait until they are ready"},
	{"stop", 1, 1, 0, 1, "stop NAME",
	 "drain, then stop; waits until the workers have exited"},
	{"restart", 1, 1, 0, 1, "restart NAME",
	 "rolling replacement, one worker at a time, never all at once"},
	{"scale", 2, 2, 0, 1, "scale NAME N",
	 "add workers or drain the extra ones to reach N"},
	{"upgrade", 1, 2, 0, 1, "upgrade [--abort] NAME",
	 "rolling upgrade to a new generation, upgrade_batch at a time; rolls back on failure"},
	{"reload", 0, 1, 0, 1, "reload [--dry-run]",
	 "re-read the config file and apply the difference (or only show it)"},
	{"drain", 1, 1, 0, 0, "drain NAME",
	 "stop giving the workers connections; they finish and exit; returns at once"},
	{"signal", 2, 2, 0, 0, "signal NAME SIG",
	 "send a signal (TERM, HUP, USR1, 9, ...) to the workers"},
	{"pid", 0, 1, 1, 0, "pid [NAME]", "batond's pid, or the workers' pids"},
	{"metrics", 0, 0, 1, 0, "metrics", "Prometheus text format 0.0.4"},
	{"version", 0, 0, 1, 0, "version", "batond version and protocols"},
	{"shutdown", 0, 0, 0, 0, "shutdown", "drain every worker and exit, like SIGTERM"},
	{"reexec", 0, 2, 0, 1, "reexec [--binary PATH]",
	 "replace batond's own binary in place: same pid, workers and sockets; the old one serves on if anything fails"},
	{"help", 0, 1, 1, 0, "help [COMMAND]", "this list, or one command's usage"},
	{NULL, 0, 0, 0, 0, NULL, NULL},
};

static int printable(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e;
}

int ctl_parse_request(const char *line, size_t len, struct ctl_request *req,
		      char *err, size_t errlen)
{
	static const char version[] = CTL_VERSION;
	size_t n = len;

	if (n && line[n - 1] == '\n')
		n--;
	/* The limit counts the '\n', sent or not. */
	if (n + 1 > CTL_LINE_MAX) {
		snprintf(err, errlen, "request line longer than %d bytes", CTL_LINE_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];
		if (printable(c))
			continue;
		if (c == '\r' && i + 1 == n)
			snprintf(err, errlen,
				 "byte 0x0d (CR) at offset %zu: end the request with \\n alone", i);
		else
			snprintf(err, errlen,
				 "byte 0x%02x at offset %zu: a request is printable ASCII only", c, i);
		return -1;
	}

	memset(req, 0, sizeof(*req));
	memcpy(req->buf, line, n);
	req->buf[n] = '\0';

	/* The version, the format, then up to CTL_ARGS_MAX words; more are
	 * counted, not kept, so the version is checked first. */
	char *words[CTL_ARGS_MAX + 2];
	int nwords = 0;
	char *p = req->buf;
	for (;;) {
		while (*p == ' ')
			*p++ = '\0';
		if (!*p)
			break;
		if (nwords < CTL_ARGS_MAX + 2)
			words[nwords] = p;
		nwords++;
		while (*p && *p != ' ')
			p++;
	}

	if (nwords == 0) {
		snprintf(err, errlen, "empty request line: want '%s FORMAT COMMAND [ARG...]'",
			 version);
		return -1;
	}
	if (strcmp(words[0], version) != 0) {
		/* A word with a slash names some protocol; anything else is a
		 * client that forgot the version. */
		if (strchr(words[0], '/'))
			snprintf(err, errlen,
				 "unsupported protocol '%.64s', this batond speaks %s",
				 words[0], version);
		else
			snprintf(err, errlen,
				 "missing protocol version: a request starts with '%s', not '%.64s'",
				 version, words[0]);
		return -1;
	}
	if (nwords < 2) {
		snprintf(err, errlen, "missing format after %s: want text or json", version);
		return -1;
	}
	if (strcmp(words[1], "json") == 0) {
		req->json = 1;
	} else if (strcmp(words[1], "text") != 0) {
		snprintf(err, errlen, "bad format '%.64s': want text or json", words[1]);
		return -1;
	}
	if (nwords < 3) {
		snprintf(err, errlen, "missing command after the format");
		return -1;
	}
	if (nwords > CTL_ARGS_MAX + 2) {
		snprintf(err, errlen,
			 "too many words: at most %d after the format (the command and %d arguments)",
			 CTL_ARGS_MAX, CTL_ARGS_MAX - 1);
		return -1;
	}
	req->argc = nwords - 2;
	for (int i = 0; i < req->argc; i++)
		req->argv[i] = words[i + 2];
	req->argv[req->argc] = NULL;
	return 0;
}

int ctl_format_request(int json, int argc, char *const argv[], char *buf,
		       size_t size, char *err, size_t errlen)
{
	if (argc < 1) {
		snprintf(err, errlen, "no command");
		return -1;
	}
	if (argc > CTL_ARGS_MAX) {
		snprintf(err, errlen, "too many arguments: at most %d after the command",
			 CTL_ARGS_MAX - 1);
		return -1;
	}
	const char *fmt = json ? CTL_VERSION " json" : CTL_VERSION " text";
	size_t o = strlen(fmt);
	if (o + 2 > size) {
		snprintf(err, errlen, "request longer than the %zu byte buffer", size);
		return -1;
	}
	memcpy(buf, fmt, o);
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		size_t alen = strlen(a);
		if (alen == 0) {
			snprintf(err, errlen, "argument %d is empty", i);
			return -1;
		}
		for (size_t j = 0; j < alen; j++) {
			unsigned char c = (unsigned char)a[j];
			if (c == ' ' || !printable(c)) {
				snprintf(err, errlen,
					 "argument %d has byte 0x%02x at offset %zu: "
					 "only printable ASCII without spaces", i, c, j);
				return -1;
			}
		}
		/* The space, the word, and room for the final '\n'. */
		if (o + 1 + alen + 1 > CTL_LINE_MAX) {
			snprintf(err, errlen, "request longer than %d bytes", CTL_LINE_MAX);
			return -1;
		}
		if (o + 1 + alen + 2 > size) {
			snprintf(err, errlen, "request longer than the %zu byte buffer", size);
			return -1;
		}
		buf[o++] = ' ';
		memcpy(buf + o, a, alen);
		o += alen;
	}
	buf[o++] = '\n';
	buf[o] = '\0';
	return (int)o;
}

int ctl_parse_response(const char *line, char *kind, int *code,
		       const char **text)
{
	if ((line[0] != '>' && line[0] != '|' && line[0] != '=') || line[1] != ' ')
		return -1;
	*kind = line[0];
	if (line[0] != '=') {
		*text = line + 2;
		return 0;
	}

	const char *p = line + 2;
	int v = 0, digits = 0;
	while (*p >= '0' && *p <= '9') {
		if (++digits > 3)
			return -1;
		v = v * 10 + (*p++ - '0');
	}
	/* One to three digits, no leading zero, then the end or a space. */
	if (digits == 0 || v > 255 || (digits > 1 && line[2] == '0'))
		return -1;
	if (*p == ' ')
		p++;
	else if (*p)
		return -1;
	*code = v;
	*text = p;
	return 0;
}

const struct ctl_command *ctl_find(const char *name)
{
	for (const struct ctl_command *c = ctl_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

int ctl_check_args(const struct ctl_command *c, int nargs, char *err,
		   size_t errlen)
{
	int max = c->max_args < 0 ? CTL_ARGS_MAX - 1 : c->max_args;
	if (nargs >= c->min_args && nargs <= max)
		return 0;
	snprintf(err, errlen, "usage: batonctl %s", c->usage);
	return -1;
}

int ctl_help_line(const struct ctl_command *c, char *buf, size_t size)
{
	return snprintf(buf, size, "  %-24s%s", c->usage, c->help);
}

/* Count n more bytes at *o, and write them if they fit with a NUL.  Once
 * a piece does not fit, no later one does: *o only grows. */
static void json_put(char *out, size_t size, size_t *o, size_t *written,
		     const char *p, size_t n)
{
	if (*o + n < size) {
		memcpy(out + *o, p, n);
		*written = *o + n;
	}
	*o += n;
}

size_t ctl_json_str(char *out, size_t size, const char *s)
{
	size_t o = 0, written = 0;
	char esc[8];

	json_put(out, size, &o, &written, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		size_t n = 1;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			n = 2;
		} else if (c < 0x20 || c == 0x7f) {
			n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
		} else {
			esc[0] = (char)c;
		}
		json_put(out, size, &o, &written, esc, n);
	}
	json_put(out, size, &o, &written, "\"", 1);
	if (size)
		out[written] = '\0';
	return o;
}
