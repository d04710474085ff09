/*
 * batonctl: batond's command line client.  It sends one baton/1 request
 * (common/ctl.h) on the control socket and relays the answer: progress to
 * stderr, output to stdout, and the final line's code as its exit status.
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "util.h"
#include "version.h"

/* As config.c's default for [baton] control. */
#define TIMEOUT_MAX (30LL * 86400)

static const char *prog = "batonctl";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [-s SOCKET | -c FILE] [--json] [--timeout SEC] COMMAND [ARGS]\n"
		"       %s -h | -V\n"
		"\n"
		"  -s, --socket SOCKET  batond's control socket\n"
		"  -c, --config FILE    take the socket from FILE's [baton] control key\n"
		"      --json           ask for JSON output\n"
		"      --timeout SEC    give up after SEC seconds (default 0: wait)\n"
		"  -h, --help           this help\n"
		"  -V, --version        batonctl's version\n"
		"\n"
		"Without -s or -c: $BATON_SOCKET, else the control key of %s\n"
		"if it exists, else %s.\n"
		"\n"
		"Commands:\n",
		prog, prog, BATON_DEFAULT_CONFIG, BATON_DEFAULT_CONTROL);
	for (const struct ctl_command *c = ctl_commands; c->name; c++) {
		char line[256];
		ctl_help_line(c, line, sizeof(line));
		fprintf(f, "%s\n", line);
	}
	fprintf(f, "%s\n\n"
		"Exit status: 0 done, 1 failed, 2 usage error, 3 a worker is not\n"
		"RUNNING (status), 4 permission denied or batond unreachable.\n",
		CTL_NAME_HELP);
}

/* Exit with status code after "batonctl: message" on stderr. */
static void die(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

static void die(int code, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* The local answer to "help [COMMAND]". */
static int help(int argc, char **argv)
{
	if (argc == 0) {
		usage(stdout);
		return CTL_OK;
	}
	const struct ctl_command *c = ctl_find(argv[0]);
	if (!c) {
		fprintf(stderr, "%s: unknown command '%s'; '%s help' lists them\n",
			prog, argv[0], prog);
		return CTL_USAGE;
	}
	printf("usage: %s %s\n  %s\n", prog, c->usage, c->help);
	if (strstr(c->usage, "NAME"))
		printf("%s\n", CTL_NAME_HELP);
	return CTL_OK;
}

struct ini_control {
	const char *here;
	char path[PATH_MAX];
	int found;
	int too_long;
};

static int control_key(void *user, const char *section, const char *name,
		       const char *value)
{
	struct ini_control *ic = user;
	if (strcmp(section, "baton") != 0 || strcmp(name, "control") != 0)
		return 1;
	ic->found = 1;
	ic->too_long = util_expand_here(ic->here, value, ic->path, sizeof(ic->path)) != 0;
	return 1;
}

/*
 * The control socket named by the config file at path: its [baton] control
 * key, or batond's default.  Only that key is read; checking the rest is
 * `batond -t`'s job.  Exits on errors.
 */
static void socket_from_config(const char *path, char *out, size_t size)
{
	char here[PATH_MAX];
	FILE *f = fopen(path, "re");
	if (!f)
		die(errno == EACCES ? CTL_DENIED : CTL_USAGE, "cannot read %s: %s",
		    path, strerror(errno));

	char *abs = realpath(path, NULL);
	snprintf(here, sizeof(here), "%s", abs ? abs : path);
	free(abs);
	char *slash = strrchr(here, '/');
	if (slash && slash != here)
		*slash = '\0';
	else if (slash)
		slash[1] = '\0';
	else
		strcpy(here, ".");

	struct ini_control ic = {.here = here};
	int rc = ini_parse_file(f, control_key, &ic);
	int rerr = ferror(f) ? errno : 0;
	fclose(f);
	if (rc < 0 || rerr)
		die(CTL_USAGE, "cannot read %s: %s", path,
		    rerr ? strerror(rerr) : "out of memory");
	if (!ic.found) {
		snprintf(out, size, "%s", BATON_DEFAULT_CONTROL);
		return;
	}
	if (ic.too_long || strlen(ic.path) >= size)
		die(CTL_USAGE, "%s: [baton] control is too long", path);
	if (!ic.path[0])
		die(CTL_USAGE, "%s: [baton] control is empty", path);
	snprintf(out, size, "%s", ic.path);
}

static void choose_socket(const char *sock, const char *config, char *out,
			  size_t size)
{
	const char *env = getenv("BATON_SOCKET");

	if (sock)
		snprintf(out, size, "%s", sock);
	else if (config)
		socket_from_config(config, out, size);
	else if (env && env[0])
		snprintf(out, size, "%s", env);
	else if (access(BATON_DEFAULT_CONFIG, R_OK) == 0)
		socket_from_config(BATON_DEFAULT_CONFIG, out, size);
	else
		snprintf(out, size, "%s", BATON_DEFAULT_CONTROL);
}

static int connect_batond(const char *path)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};

	if (strlen(path) >= sizeof(un.sun_path))
		die(CTL_USAGE, "socket path longer than %zu bytes: %s",
		    sizeof(un.sun_path) - 1, path);
	strcpy(un.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die(CTL_FAILED, "socket: %s", strerror(errno));
	while (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EACCES || errno == EPERM)
			die(CTL_DENIED, "permission denied on %s", path);
		if (errno == ENOENT || errno == ECONNREFUSED)
			die(CTL_DENIED, "cannot reach batond at %s: %s (is it running?)",
			    path, strerror(errno));
		die(CTL_DENIED, "cannot reach batond at %s: %s", path, strerror(errno));
	}
	return fd;
}

/* Send the whole request.  A peer that closed early may have answered
 * already (permission denied, say), so that is left for the reader. */
static void send_request(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return;
		if (n < 0)
			die(CTL_FAILED, "sending to batond: %s", strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* Print s with its unprintable bytes as \xNN, for error messages. */
static void print_escaped(FILE *f, const char *s, size_t len)
{
	for (size_t i = 0; i < len && i < 80; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c <= 0x7e)
			fputc(c, f);
		else
			fprintf(f, "\\x%02x", c);
	}
	if (len > 80)
		fputs("...", f);
}

static void malformed(const char *line, size_t len)
{
	fprintf(stderr, "%s: malformed response from batond: '", prog);
	print_escaped(stderr, line, len);
	fputs("'\n", stderr);
	exit(CTL_FAILED);
}

static void put_line(FILE *f, const char *text)
{
	fprintf(f, "%s\n", text);
	if (fflush(f) == 0)
		return;
	/* A reader that went away (batonctl status | head -1) needs no
	 * message; the operation's outcome is then unknown: exit 1. */
	if (errno != EPIPE)
		fprintf(stderr, "%s: write error: %s\n", prog, strerror(errno));
	exit(CTL_FAILED);
}

/*
 * Handle one response line (its '\n' replaced by NUL).  Returns -1 to read
 * on, or the exit code the final line carries.
 */
static int handle_line(char *line, size_t len)
{
	char kind;
	int code;
	const char *text;

	if (memchr(line, '\0', len) || ctl_parse_response(line, &kind, &code, &text))
		malformed(line, len);
	switch (kind) {
	case '>':
		put_line(stderr, text);
		return -1;
	case '|':
		put_line(stdout, text);
		return -1;
	default:
		if (text[0] && code == CTL_OK)
			put_line(stdout, text);
		else if (text[0])
			fprintf(stderr, "%s: %s\n", prog, text);
		return code;
	}
}

/* Relay response lines until the final one; returns its code. */
static int read_response(int fd, long long timeout)
{
	char buf[CTL_LINE_MAX + 1];
	size_t have = 0;
	uint64_t deadline = timeout ? now_ms() + (uint64_t)timeout * 1000 : 0;

	for (;;) {
		int wait = -1;
		if (deadline) {
			uint64_t now = now_ms();
			if (now >= deadline)
				die(CTL_FAILED, "no answer within %lld s", timeout);
			wait = deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
		}
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int rc = poll(&pfd, 1, wait);
		if (rc < 0 && errno != EINTR)
			die(CTL_FAILED, "poll: %s", strerror(errno));
		if (rc <= 0)
			continue;

		ssize_t n = recv(fd, buf + have, CTL_LINE_MAX - have, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0 && errno != ECONNRESET)
			die(CTL_FAILED, "reading from batond: %s", strerror(errno));
		if (n <= 0)
			die(CTL_FAILED, "batond closed the connection before answering");
		have += (size_t)n;

		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
			*nl = '\0';
			int code = handle_line(start, (size_t)(nl - start));
			if (code >= 0)
				return code;
			start = nl + 1;
		}
		have -= (size_t)(start - buf);
		memmove(buf, start, have);
		/* A full buffer and no '\n': the line is over CTL_LINE_MAX. */
		if (have == CTL_LINE_MAX)
			malformed(buf, have);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"config", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *config = NULL;
	long long timeout = 0;
	int json = 0, opt;
	char err[256];

	signal(SIGPIPE, SIG_IGN);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:s:c:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (!optarg[0])
				die(CTL_USAGE, "-s needs a socket path");
			sock = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 't':
			if (util_parse_int(optarg, 0, TIMEOUT_MAX, &timeout))
				die(CTL_USAGE, "--timeout wants whole seconds (0-%lld), not '%s'",
				    TIMEOUT_MAX, optarg);
			break;
		case 'h':
			usage(stdout);
			return CTL_OK;
		case 'V':
			printf("batonctl %s (protocol %s)\n", BATON_VERSION, CTL_VERSION);
			return CTL_OK;
		case ':':
			die(CTL_USAGE, "option %s needs an argument", argv[optind - 1]);
		default:
			if (optopt && optopt != '?')
				die(CTL_USAGE, "unknown option -%c; '%s -h' for help", optopt, prog);
			die(CTL_USAGE, "unknown option %s; '%s -h' for help",
			    argv[optind - 1], prog);
		}
	}
	if (sock && config)
		die(CTL_USAGE, "-s and -c both name the socket: give one");
	if (optind >= argc) {
		usage(stderr);
		return CTL_USAGE;
	}

	char **args = argv + optind;
	int nargs = argc - optind;
	const struct ctl_command *c = ctl_find(args[0]);
	if (!c)
		die(CTL_USAGE, "unknown command '%s'; '%s help' lists them", args[0], prog);
	if (ctl_check_args(c, nargs - 1, err, sizeof(err))) {
		fprintf(stderr, "%s: wrong number of arguments for %s\n%s\n", prog,
			c->name, err);
		return CTL_USAGE;
	}
	if (strcmp(c->name, "help") == 0)
		return help(nargs - 1, args + 1);

	char req[CTL_LINE_MAX + 1];
	int len = ctl_format_request(json, nargs, args, req, sizeof(req), err, sizeof(err));
	if (len < 0)
		die(CTL_USAGE, "%s", err);

	char path[PATH_MAX];
	choose_socket(sock, config, path, sizeof(path));
	int fd = connect_batond(path);
	send_request(fd, req, (size_t)len);
	return read_response(fd, timeout);
}
