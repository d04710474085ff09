/*
 * batond: the supervisor.  Options, start-up, the event base, signals, and
 * the wiring: the hooks through which lower floors reach higher ones.
 */
#include <errno.h>
#include <event2/event.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "activation.h"
#include "batond.h"
#include "config.h"
#include "config_keys.h"
#include "command.h"
#include "control.h"
#include "cpusched.h"
#include "httpd.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "ops.h"
#include "output.h"
#include "pool.h"
#include "reexec.h"
#include "reload.h"
#include "snapshot.h"
#include "state.h"
#include "upgrade.h"
#include "util.h"
#include "version.h"


static void usage(FILE *out)
{
	fprintf(out,
		"usage: batond [-t] [-c FILE] [-l LEVEL]\n"
		"       batond -V | -h | --config-reference\n"
		"\n"
		"  -c, --config FILE   configuration file (default %s)\n"
		"  -t, --test          check the configuration, print every error, exit 0/1\n"
		"  -l, --log-level L   override log_level: debug, info, warn, error\n"
		"  -V, --version       print the version\n"
		"  -h, --help          this help\n"
		"      --config-reference[=man]  print every config key as a Markdown\n"
		"                      table (or as man(7) text for baton.ini(5))\n"
		"      --check-state FD  read a reexec state from FD and check it (batond\n"
		"                      runs this itself before `batonctl reexec`; exit 0/1)\n"
		"\n"
		"Signals: TERM/INT drain and exit (twice: stop now), HUP reload the\n"
		"configuration, USR2 rolling upgrade of every program, USR1 reopen the\n"
		"log file (log_file).\n",
		BATON_DEFAULT_CONFIG);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	switch (sig) {
	case SIGCHLD:
		pool_reap();
		break;
	case SIGTERM:
	case SIGINT:
		ops_shutdown(sig == SIGINT ? "SIGINT" : "SIGTERM");
		break;
	case SIGHUP:
		log_info("SIGHUP: reloading the configuration");
		ops_reload(NULL, 0);
		break;
	case SIGUSR1: {
		char err[512];
		if (!log_file_path()[0]) {
			log_info("SIGUSR1: logs go to stderr; nothing to reopen");
		} else if (log_reopen(err, sizeof(err)) < 0) {
			log_error("SIGUSR1: %s; logging on to the old file", err);
		} else {
			log_info("SIGUSR1: log file reopened path=%s", log_file_path());
		}
		if (output_reopen(err, sizeof(err)) < 0)
			log_error("SIGUSR1: worker output: %s", err);
		break;
	}
	case SIGUSR2:
		log_info("SIGUSR2: rolling upgrade of every program");
		upgrade_all();
		break;
	}
}

static int check_config(const char *path, struct config *cfg)
{
	char err[16384];
	int n = config_load(path, cfg, err, sizeof(err));
	if (n) {
		fputs(err, stderr);
		fprintf(stderr, "%s: %d error%s\n", path, n, n == 1 ? "" : "s");
	}
	return n;
}

static void setup(struct config *cfg)
{
	char err[512];

	for (int i = 0; i < cfg->nprograms; i++) {
		struct program *p = pool_program_new(&cfg->programs[i]);
		if (!p)
			fatal("out of memory");
		TAILQ_INSERT_TAIL(&batond.programs, p, link);
	}
	for (int i = 0; i < cfg->nlisteners; i++) {
		struct listener *l = listener_new(&cfg->listeners[i], err, sizeof(err));
		if (!l) {
			struct listener *o;
			TAILQ_FOREACH(o, &batond.listeners, link)
				listener_close(o);
			fatal("listener %s: %s", cfg->listeners[i].name, err);
		}
		TAILQ_INSERT_TAIL(&batond.listeners, l, link);
		dispatch_link_listener(l, pool_find(l->cfg.program));
	}
	if (control_open(&cfg->baton, err, sizeof(err)) < 0 ||
	    httpd_open(&cfg->baton, err, sizeof(err)) < 0) {
		struct listener *o;
		TAILQ_FOREACH(o, &batond.listeners, link)
			listener_close(o);
		control_close();
		fatal("%s", err);
	}
	activation_close_unused();
}

static void teardown(void)
{
	struct listener *l;
	struct program *p;
	control_close();
	httpd_close();
	notify_close();
	while ((l = TAILQ_FIRST(&batond.listeners))) {
		TAILQ_REMOVE(&batond.listeners, l, link);
		listener_free(l);
	}
	while ((p = TAILQ_FIRST(&batond.programs))) {
		TAILQ_REMOVE(&batond.programs, p, link);
		pool_log_totals(p);
		pool_program_free(p);
	}
}

/* ---- reexec: the new image ---- */

/* An fd given on the command line: its number, or -1 (said on stderr). */
static int fd_arg(const char *opt, const char *arg)
{
	long long fd;
	if (util_parse_int(arg, 0, INT_MAX, &fd)) {
		fprintf(stderr, "batond: %s wants an fd number, not '%s'\n", opt, arg);
		return -1;
	}
	return (int)fd;
}

static int check_state(const char *arg)
{
	char err[512];
	struct state st;
	int fd = fd_arg("--check-state", arg);
	if (fd < 0)
		return 2;
	const char *delay = getenv("BATON_TEST_CHECK_DELAY_MS"); /* tests: a slow check */
	if (delay)
		usleep((useconds_t)atoi(delay) * 1000);
	if (state_read_fd(fd, &st, err, sizeof(err)) < 0 || snapshot_check(&st, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("state ok: version %u, %d records\n", st.version, st.nrec);
	state_free(&st);
	return 0;
}

/* The old binary and the argv that restores it, made before restoring:
 * a crash while restoring runs it from the signal handler. */
static struct {
	int exe;
	char *argv[12];
	char state[16];
} fallback = {.exe = -1};

static void fallback_exec(const char *why)
{
	int n = 0;
	while (fallback.argv[n])
		n++;
	fallback.argv[n] = "--restore-error";
	fallback.argv[n + 1] = (char *)why;
	fallback.argv[n + 2] = NULL;
	execveat(fallback.exe, "", fallback.argv, reexec_env(), AT_EMPTY_PATH);
}

static void on_crash(int sig)
{
	(void)sig;
	fallback_exec("it crashed while restoring the state");
	_exit(70); /* nothing left to run: batond is gone */
}

static const int crash_sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

static void crash_handlers(int on)
{
	struct sigaction sa = {.sa_handler = on ? on_crash : SIG_DFL};
	for (size_t i = 0; i < sizeof(crash_sigs) / sizeof(crash_sigs[0]); i++)
		sigaction(crash_sigs[i], &sa, NULL);
}

/* Restoring failed before anything was done: the old binary takes over. */
static void restore_failed(const char *why)
{
	if (fallback.exe >= 0) {
		log_error("reexec: cannot restore the state: %s; executing the old batond again", why);
		fallback_exec(why);
		log_error("reexec: cannot execute the old batond: %s", strerror(errno));
	}
	fatal("reexec: cannot restore the state: %s", why);
}

/* Every fd the restored state holds becomes close-on-exec again. */
static void cloexec_all(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) > 2 && atoi(e->d_name) != dirfd(d))
			fd_set_cloexec(atoi(e->d_name));
	if (d)
		closedir(d);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"test", no_argument, NULL, 't'},
		{"log-level", required_argument, NULL, 'l'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{"config-reference", optional_argument, NULL, 'R'},
		{"check-state", required_argument, NULL, 'S'},
		{"restore-state", required_argument, NULL, 'T'}, /* reexec, internal */
		{"fallback", required_argument, NULL, 'F'},      /* reexec, internal */
		{"restore-error", required_argument, NULL, 'E'}, /* reexec, internal */
		{NULL, 0, NULL, 0},
	};
	const char *restore = NULL, *restore_error = NULL;
	int restore_fd = -1;
	const char *path = BATON_DEFAULT_CONFIG, *level = NULL;
	int test = 0, c;
	enum log_level lvl;

	/* Before anything opens a file or a socket. */
	if (fd_open_std() < 0) {
		fprintf(stderr, "batond: cannot open /dev/null on a closed fd 0-2: %s\n",
			strerror(errno));
		return 1;
	}
	log_init("batond");
	while ((c = getopt_long(argc, argv, "c:tl:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'l':
			level = optarg;
			if (log_parse_level(level, &lvl)) {
				fprintf(stderr, "batond: bad log level '%s' (debug, info, warn, error)\n", level);
				return 2;
			}
			break;
		case 'V':
			printf("batond %s (worker protocol %d)\n", BATON_VERSION, PROTO_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case 'R':
			if (optarg && strcmp(optarg, "man") == 0) {
				config_reference_man(stdout);
			} else if (!optarg || strcmp(optarg, "markdown") == 0) {
				config_reference(stdout);
			} else {
				fprintf(stderr, "batond: --config-reference=%s: want markdown or man\n", optarg);
				return 2;
			}
			return 0;
		case 'S':
			return check_state(optarg);
		case 'T':
			restore = optarg;
			if ((restore_fd = fd_arg("--restore-state", optarg)) < 0)
				return 2;
			break;
		case 'F':
			if ((fallback.exe = fd_arg("--fallback", optarg)) < 0)
				return 2;
			break;
		case 'E':
			restore_error = optarg;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "batond: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	struct config cfg;
	struct state st;
	memset(&cfg, 0, sizeof(cfg));
	reexec_init();
	if (restore) {
		char serr[512];
		/* The old image: back to its binary if this one cannot go on. */
		int k = 0;
		fallback.argv[k++] = "batond";
		fallback.argv[k++] = "-c";
		fallback.argv[k++] = (char *)path;
		if (level) {
			fallback.argv[k++] = "-l";
			fallback.argv[k++] = (char *)level;
		}
		snprintf(fallback.state, sizeof(fallback.state), "%s", restore);
		fallback.argv[k++] = "--restore-state";
		fallback.argv[k++] = fallback.state;
		if (fallback.exe >= 0)
			crash_handlers(1);
		if (state_read_fd(restore_fd, &st, serr, sizeof(serr)) < 0)
			restore_failed(serr);
		if (!restore_error && getenv("BATON_TEST_RESTORE_ABORT"))
			abort(); /* tests: a new image that crashes while restoring */
		const char *delay = getenv("BATON_TEST_RESTORE_DELAY_MS"); /* tests: a slow exec */
		if (!restore_error && delay)
			usleep((useconds_t)atoi(delay) * 1000);
	} else if (check_config(path, &cfg)) {
		return 1;
	}
	if (test && !restore) {
		printf("%s: ok (%d listener%s, %d program%s)\n", path, cfg.nlisteners,
		       cfg.nlisteners == 1 ? "" : "s", cfg.nprograms,
		       cfg.nprograms == 1 ? "" : "s");
		config_free(&cfg);
		return 0;
	}
	batond.log_level_fixed = level != NULL;
	if (!restore)
		log_set_level(level ? lvl : cfg.baton.log_level);
	else if (level)
		log_set_level(lvl);
	if (!restore && cfg.baton.log_file[0]) {
		char lerr[512];
		if (log_open_file(cfg.baton.log_file, lerr, sizeof(lerr)) < 0) {
			fprintf(stderr, "batond: %s\n", lerr);
			config_free(&cfg);
			return 1;
		}
	}

	signal(SIGPIPE, SIG_IGN);
	batond.base = event_base_new();
	if (!batond.base)
		fatal("cannot create event base");
	static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
	struct event *sev[sizeof(sigs) / sizeof(sigs[0])];
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sev[i] = evsignal_new(batond.base, sigs[i], on_signal, NULL);
		if (!sev[i] || evsignal_add(sev[i], NULL) < 0)
			fatal("cannot handle signal %d", sigs[i]);
	}

	if (!restore)
		log_info("starting version=%s config=%s", BATON_VERSION, path);
	char nerr[256];
	if (notify_init(nerr, sizeof(nerr)) < 0 ||
	    (!restore && activation_init(nerr, sizeof(nerr)) < 0))
		fatal("%s", nerr);
	/* Orphans of our workers (daemonized helpers, children of a crashed
	 * worker) come to us rather than to init: we reap them, which also
	 * makes batond a correct PID 1 in a container. */
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("cannot become a child subreaper: %s", strerror(errno));
	else if (getpid() == 1)
		log_info("running as PID 1: reaping every orphan");
	batond.config_path = path;
	batond.baton = cfg.baton;
	if (command_check(nerr, sizeof(nerr)) < 0)
		fatal("%s", nerr);
	/* The floors below call up only through these. */
	pool_hooks.changed = op_pool_changed;
	pool_hooks.reaped = reexec_reaped;
	listener_hooks.accept = dispatch_accept;
	listener_hooks.resume = dispatch_resume;
	reload_hooks.baton = control_reconfigure;
	reexec_hooks.save = snapshot_save;
	if (restore) {
		const struct reply *requester;
		struct reexec_info info = {.old_exe = -1};
		char rerr[512];
		if (snapshot_restore(&st, &requester, &info, rerr, sizeof(rerr)) < 0)
			restore_failed(rerr);
		cpusched_apply(batond.baton.batch_scheduling);
		state_free(&st);
		crash_handlers(0);
		close(restore_fd); /* read: the old image is not coming back */
		cloexec_all(); /* the state fd, the old binary and every adopted fd */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL); /* blocked by the old image's commit */
		snapshot_start();
		pool_reap(); /* workers that exited during the exec */
		notify_pool_changed();
		reexec_restored(requester, &info, restore_error);
	} else {
		cpusched_init(-1);
		cpusched_apply(cfg.baton.batch_scheduling);
		setup(&cfg);
		struct program *p;
		TAILQ_FOREACH(p, &batond.programs, link)
			pool_start(p);
		pool_reap(); /* children that died before the handler existed */
		notify_pool_changed(); /* READY=1 at once if no program has workers */
	}

	event_base_dispatch(batond.base);

	teardown();
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		event_free(sev[i]);
	event_base_free(batond.base);
	config_free(&cfg);
	log_info("stopped");
	log_close_file();
	return 0;
}
