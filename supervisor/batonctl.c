/*
 * batonctl: batond's command line client.  It sends one baton/1 request
 * (common/ctl.h) on the control socket and relays the answer: progress to
 * stderr, output to stdout, and the final line's code as its exit status.
 * The exchange itself is in client.c; `batonctl top`, which repeats two
 * requests as a live view, in top.c.
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "ctl.h"
#include "top.h"
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
	char line[256];
	ctl_help_line(&top_command, line, sizeof(line)); /* batonctl's own */
	fprintf(f, "%s\n", line);
	fprintf(f, "%s\n\n"
		"Exit status: 0 done, 1 failed, 2 usage error, 3 a worker is not\n"
		"RUNNING (status), 4 permission denied or batond unreachable.\n",
		CTL_NAME_HELP);
}

/* The local answer to "help [COMMAND]". */
static int help(int argc, char **argv)
{
	if (argc == 0) {
		usage(stdout);
		return CTL_OK;
	}
	if (strcmp(argv[0], "top") == 0) {
		top_help(stdout);
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
		client_die(errno == EACCES ? CTL_DENIED : CTL_USAGE, "cannot read %s: %s",
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
		client_die(CTL_USAGE, "cannot read %s: %s", path,
			   rerr ? strerror(rerr) : "out of memory");
	if (!ic.found) {
		snprintf(out, size, "%s", BATON_DEFAULT_CONTROL);
		return;
	}
	if (ic.too_long || strlen(ic.path) >= size)
		client_die(CTL_USAGE, "%s: [baton] control is too long", path);
	if (!ic.path[0])
		client_die(CTL_USAGE, "%s: [baton] control is empty", path);
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

/* Progress to stderr, output to stdout, as they come. */
static void relay_line(struct client_exchange *x, char kind, const char *text)
{
	FILE *f = kind == '>' ? stderr : stdout;
	(void)x;
	fprintf(f, "%s\n", text);
	client_flush(f);
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
				client_die(CTL_USAGE, "-s needs a socket path");
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
				client_die(CTL_USAGE, "--timeout wants whole seconds (0-%lld), not '%s'",
					   TIMEOUT_MAX, optarg);
			break;
		case 'h':
			usage(stdout);
			return CTL_OK;
		case 'V':
			printf("batonctl %s (protocol %s)\n", BATON_VERSION, CTL_VERSION);
			return CTL_OK;
		case ':':
			client_die(CTL_USAGE, "option %s needs an argument", argv[optind - 1]);
		default:
			if (optopt && optopt != '?')
				client_die(CTL_USAGE, "unknown option -%c; '%s -h' for help", optopt, prog);
			client_die(CTL_USAGE, "unknown option %s; '%s -h' for help",
				   argv[optind - 1], prog);
		}
	}
	if (sock && config)
		client_die(CTL_USAGE, "-s and -c both name the socket: give one");
	if (optind >= argc) {
		usage(stderr);
		return CTL_USAGE;
	}

	char **args = argv + optind;
	int nargs = argc - optind;
	char path[PATH_MAX];
	if (strcmp(args[0], "top") == 0) {
		if (json)
			client_die(CTL_USAGE, "top draws a table, not JSON (see --json status)");
		choose_socket(sock, config, path, sizeof(path));
		return top_run(path, timeout, nargs, args);
	}
	const struct ctl_command *c = ctl_find(args[0]);
	if (!c)
		client_die(CTL_USAGE, "unknown command '%s'; '%s help' lists them", args[0], prog);
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
		client_die(CTL_USAGE, "%s", err);

	choose_socket(sock, config, path, sizeof(path));
	struct client_exchange x = {.timeout = timeout, .line = relay_line};
	if (timeout)
		x.deadline = now_ms() + (uint64_t)timeout * 1000;
	int code, fd = client_dial(path, &code, x.err, sizeof(x.err));
	if (fd < 0)
		client_die(code, "%s", x.err);
	if ((code = client_exchange(&x, fd, req, (size_t)len)) < 0)
		client_die(CTL_FAILED, "%s", x.err);
	if (x.final[0] && code == CTL_OK)
		relay_line(&x, '|', x.final);
	else if (x.final[0])
		fprintf(stderr, "%s: %s\n", prog, x.final);
	return code;
}
