/*
 * batonctl top.  Every interval it asks batond for `status` (as JSON) and
 * `metrics`, two ordinary read-only requests, and draws a frame: rates
 * and latency quantiles come from the difference of the last two answers.
 * On a terminal it draws in the alternate screen with plain ANSI escapes
 * and reads keys in cbreak mode, and gives the terminal back however it
 * ends; otherwise it prints frames as text.
 */
#include "top.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "util.h"

#define TOP_TIMEOUT 5 /* seconds a refresh waits for batond by default */
#define LAT_MAX 32    /* latency histogram buckets kept per program */

const struct ctl_command top_command = {
	"top", 0, -1, 1, 0, "top [-n N] [NAME...]",
	"live view: workers, listeners, rates, handoff latency; q quits",
};

struct tworker {
	int slot, pid, gen; /* pid and gen are -1 for a slot without a process */
	unsigned long long conns, handed, uptime;
	char state[16];
};

struct tprog {
	char name[64];
	int gen, slots, nw, nb;
	unsigned long long queued, accepted, dropped;
	struct tworker *w;
	double le[LAT_MAX], cum[LAT_MAX]; /* handoff latency buckets, cumulative */
};

struct tlistener {
	char name[64], addr[128], program[64];
	unsigned long long accepted;
	int paused;
};

/* What batond said at one time. */
struct snap {
	uint64_t ms; /* when (monotonic); 0: not yet */
	int np, nl;
	struct tprog *p;
	struct tlistener *l;
};

struct top {
	const char *path;
	char req[2][CTL_LINE_MAX + 1]; /* status --json [NAME...], metrics */
	int len[2];
	int tty, keys;      /* drawing on a terminal; reading keys from one */
	long long timeout;  /* seconds a refresh may wait */
	uint64_t interval;  /* ms */
	struct snap a, b;   /* the answers before the last, and the last */
	char err[CTL_LINE_MAX + 64]; /* why the last refresh failed, or "" */
};

/* A '|' line buffer, for client_exchange's line callback. */
struct text {
	char *s;
	size_t len, cap;
	int nomem;
};

/* Which object of the status document the JSON reader is in. */
enum { J_TOP, J_PROG, J_WORKER, J_LISTENER };

static struct termios saved_tio;
static volatile sig_atomic_t term_on, have_tio, resized;

void top_help(FILE *f)
{
	fprintf(f,
		"usage: batonctl top [-n N] [-i SEC] [NAME...]\n"
		"  %s\n"
		"  -n, --iterations N  draw N frames, then exit (default: until q, or 1\n"
		"                      when standard output is not a terminal)\n"
		"  -i, --interval SEC  between frames: 2, 1s, 500ms (100ms to 1h, default 1s)\n"
		"Keys: q quits.  NAME limits the view as for status.\n%s\n",
		top_command.help, CTL_NAME_HELP);
}

static void snap_free(struct snap *s)
{
	for (int i = 0; i < s->np; i++)
		free(s->p[i].w);
	free(s->p);
	free(s->l);
	memset(s, 0, sizeof(*s));
}

/* arr with one more element, zeroed, at its end (*n counts it), or NULL. */
static void *grow(void *arr, int *n, size_t size)
{
	char *a = realloc(arr, (size_t)(*n + 1) * size);
	if (a)
		memset(a + (size_t)(*n)++ * size, 0, size);
	return a;
}

/* Keep one scalar of the status document, as its key says. */
static void set_field(struct snap *s, int in, const char *key, const char *v)
{
	unsigned long long n = strtoull(v, NULL, 10);
	int num = strcmp(v, "null") == 0 ? -1 : (int)n;

	if (in == J_PROG) {
		struct tprog *p = &s->p[s->np - 1];
		if (!strcmp(key, "name"))
			snprintf(p->name, sizeof(p->name), "%s", v);
		else if (!strcmp(key, "generation"))
			p->gen = num;
		else if (!strcmp(key, "slots"))
			p->slots = num;
		else if (!strcmp(key, "queued"))
			p->queued = n;
		else if (!strcmp(key, "accepted"))
			p->accepted = n;
		else if (!strcmp(key, "dropped"))
			p->dropped = n;
	} else if (in == J_WORKER) {
		struct tprog *p = &s->p[s->np - 1];
		struct tworker *w = &p->w[p->nw - 1];
		if (!strcmp(key, "state"))
			snprintf(w->state, sizeof(w->state), "%s", v);
		else if (!strcmp(key, "slot"))
			w->slot = num;
		else if (!strcmp(key, "pid"))
			w->pid = num;
		else if (!strcmp(key, "generation"))
			w->gen = num;
		else if (!strcmp(key, "conns"))
			w->conns = n;
		else if (!strcmp(key, "handed"))
			w->handed = n;
		else if (!strcmp(key, "uptime_s"))
			w->uptime = n;
	} else if (in == J_LISTENER) {
		struct tlistener *l = &s->l[s->nl - 1];
		if (!strcmp(key, "name"))
			snprintf(l->name, sizeof(l->name), "%s", v);
		else if (!strcmp(key, "program"))
			snprintf(l->program, sizeof(l->program), "%s", v);
		else if (!strcmp(key, "address") || (!strcmp(key, "bound") && v[0]))
			snprintf(l->addr, sizeof(l->addr), "%s", v); /* bound comes later */
		else if (!strcmp(key, "accepted"))
			l->accepted = n;
		else if (!strcmp(key, "paused"))
			l->paused = strcmp(v, "true") == 0;
	}
}

static void skip_space(const char **p)
{
	*p += strspn(*p, " \t\r\n");
}

/* The JSON string at *p into out, cut to size; control and non-ASCII
 * characters become ' ' and '?', since they only get printed. */
static int json_string(const char **p, char *out, size_t size)
{
	const char *s = *p + 1;
	size_t o = 0;

	for (; *s && *s != '"'; s++) {
		char c = *s;
		unsigned v = 0;
		if (c == '\\') {
			c = *++s;
			if (c == 'u' && (strspn(s + 1, "0123456789abcdefABCDEF") < 4 ||
					 sscanf(s + 1, "%4x", &v) != 1))
				return -1;
			if (c == 'u') {
				s += 4;
				c = v >= 0x20 && v < 0x7f ? (char)v : '?';
			} else if (c && strchr("bfnrt", c)) {
				c = ' ';
			}
		}
		if (!c)
			return -1;
		if (o + 1 < size)
			out[o++] = c;
	}
	out[o] = '\0';
	if (*s != '"')
		return -1;
	*p = s + 1;
	return 0;
}

#define JSON_DEPTH 8 /* values within values: batond's status needs 5 */

static int json_value(const char **p, int in, const char *key, struct snap *s, int depth);

/* The array at *p: each of its objects becomes a new element of what
 * "programs", "workers" or "listeners" is; 0, or -1. */
static int json_array(const char **p, int in, const char *key, struct snap *s, int depth)
{
	int child = -1;

	if (in == J_TOP && !strcmp(key, "programs"))
		child = J_PROG;
	else if (in == J_PROG && !strcmp(key, "workers"))
		child = J_WORKER;
	else if (in == J_TOP && !strcmp(key, "listeners"))
		child = J_LISTENER;
	for ((*p)++, skip_space(p); **p != ']'; skip_space(p)) {
		void *room = NULL;
		struct tprog *prog = s->np ? &s->p[s->np - 1] : NULL;
		if (child < 0 || **p != '{') {
			if (json_value(p, -1, "", s, depth + 1))
				return -1;
		} else {
			if (child == J_PROG && (room = grow(s->p, &s->np, sizeof(*s->p))))
				s->p = room;
			else if (child == J_LISTENER && (room = grow(s->l, &s->nl, sizeof(*s->l))))
				s->l = room;
			else if (child == J_WORKER && (room = grow(prog->w, &prog->nw, sizeof(*prog->w))))
				prog->w = room;
			if (!room || json_value(p, child, "", s, depth + 1))
				return -1;
		}
		skip_space(p);
		if (**p == ',')
			(*p)++;
		else if (**p != ']')
			return -1;
	}
	(*p)++;
	return 0;
}

/* The object at *p, as part of what in says (-1: nothing top shows). */
static int json_object(const char **p, int in, struct snap *s, int depth)
{
	char key[32];

	for ((*p)++, skip_space(p); **p != '}'; skip_space(p)) {
		if (**p != '"' || json_string(p, key, sizeof(key)))
			return -1;
		skip_space(p);
		if (*(*p)++ != ':')
			return -1;
		skip_space(p);
		if (json_value(p, in, key, s, depth + 1))
			return -1;
		skip_space(p);
		if (**p == ',')
			(*p)++;
		else if (**p != '}')
			return -1;
	}
	(*p)++;
	return 0;
}

/* The JSON value at *p, the value of key in an object of kind in: what
 * top shows of it is kept, the rest read over.  0, or -1 if it is not
 * JSON (or nests deeper than batond's status ever does). */
static int json_value(const char **p, int in, const char *key, struct snap *s, int depth)
{
	char v[256];

	if (depth > JSON_DEPTH)
		return -1;
	if (**p == '{')
		return json_object(p, key[0] ? -1 : in, s, depth);
	if (**p == '[')
		return json_array(p, in, key, s, depth);
	if (**p == '"') {
		if (json_string(p, v, sizeof(v)))
			return -1;
	} else {
		size_t n = strcspn(*p, ",}] \t\r\n");
		if (n == 0 || n >= sizeof(v))
			return -1;
		snprintf(v, sizeof(v), "%.*s", (int)n, *p);
		*p += n;
	}
	set_field(s, in, key, v);
	return 0;
}

/* The handoff latency buckets in metrics' text, for the programs of s. */
static void parse_buckets(struct snap *s, const char *text)
{
	static const char head[] = "baton_handoff_latency_seconds_bucket{program=\"";

	for (const char *l = text; *l; l += strcspn(l, "\n"), l += *l == '\n') {
		const char *name = l + sizeof(head) - 1, *q;
		char *end;
		if (strncmp(l, head, sizeof(head) - 1) || !(q = strchr(name, '"')) ||
		    strncmp(q, "\",le=\"", 6))
			continue;
		double le = strtod(q + 6, &end); /* "+Inf" too */
		if (strncmp(end, "\"} ", 3))
			continue;
		for (int i = 0; i < s->np; i++) {
			struct tprog *p = &s->p[i];
			if (strncmp(p->name, name, (size_t)(q - name)) || p->name[q - name] ||
			    p->nb == LAT_MAX)
				continue;
			p->le[p->nb] = le;
			p->cum[p->nb++] = strtod(end + 3, NULL);
		}
	}
}

/*
 * The q-quantile of the handoffs between two answers, interpolated within
 * its bucket as Prometheus' histogram_quantile() does; -1 if there were
 * none (or batond restarted in between).
 */
static double quantile(double q, const struct tprog *a, const struct tprog *b)
{
	int n = b->nb, i = 0;

	if (!a || a->nb != n || n < 2 || !isinf(b->le[n - 1]))
		return -1;
	for (int k = 0; k < n; k++)
		if (a->le[k] != b->le[k] || b->cum[k] < a->cum[k])
			return -1;
	double total = b->cum[n - 1] - a->cum[n - 1], rank = q * total;
	if (total <= 0)
		return -1;
	while (i < n - 1 && b->cum[i] - a->cum[i] < rank)
		i++;
	if (i == n - 1)
		return b->le[n - 2]; /* in the +Inf bucket: its lower bound is all we know */
	double lo = i ? b->le[i - 1] : 0, below = i ? b->cum[i - 1] - a->cum[i - 1] : 0;
	return lo + (b->le[i] - lo) * (rank - below) / (b->cum[i] - a->cum[i] - below);
}

static void keep_line(struct client_exchange *x, char kind, const char *text)
{
	struct text *t = x->data;
	size_t n = strlen(text);

	if (kind != '|' || t->nomem)
		return;
	if (t->len + n + 2 > t->cap) {
		size_t cap = (t->len + n + 2) * 2;
		char *s = realloc(t->s, cap);
		if (!s) {
			t->nomem = 1;
			return;
		}
		t->s = s;
		t->cap = cap;
	}
	memcpy(t->s + t->len, text, n);
	t->len += n + 1;
	t->s[t->len - 1] = '\n';
	t->s[t->len] = '\0';
}

/* Read the keys typed: 1 if one was q, or the terminal cannot be read
 * any more (which would otherwise wake every wait at once). */
static int quit_typed(void)
{
	char buf[64];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n < 0)
		return errno != EINTR && errno != EAGAIN;
	return n == 0 || memchr(buf, 'q', (size_t)n) || memchr(buf, 'Q', (size_t)n);
}

/* Ask batond once: 0 with its answer in out, -1 when q was typed, or the
 * exit code the failure calls for with the reason in t->err. */
static int ask(struct top *t, int i, struct text *out)
{
	struct client_exchange x = {.timeout = t->timeout, .line = keep_line, .data = out};
	int code, fd = client_dial(t->path, &code, x.err, sizeof(x.err));

	if (fd >= 0) {
		x.deadline = now_ms() + (uint64_t)t->timeout * 1000;
		x.keys = t->keys ? quit_typed : NULL;
		code = client_exchange(&x, fd, t->req[i], (size_t)t->len[i]);
		if (code == -2)
			return -1;
		if (code == -1)
			code = CTL_FAILED;
		else if (code == CTL_NOT_RUNNING && i == 0)
			code = CTL_OK; /* status's word for a worker that is down: top shows it */
		else if (code != CTL_OK)
			snprintf(x.err, sizeof(x.err), "%s", x.final);
	}
	if (code == CTL_OK && (out->nomem || !out->s)) {
		code = CTL_FAILED;
		snprintf(x.err, sizeof(x.err), "%s", out->nomem ? "out of memory" : "empty answer");
	}
	if (code != CTL_OK)
		snprintf(t->err, sizeof(t->err), "%s", x.err);
	return code;
}

/* A new answer into t->b (the last one moves to t->a): as ask(). */
static int refresh(struct top *t)
{
	struct text out[2] = {{0}};
	struct snap s = {0};
	int rc = ask(t, 0, &out[0]);

	if (rc == 0)
		rc = ask(t, 1, &out[1]);
	const char *p = out[0].s;
	if (rc == 0 && (skip_space(&p), *p != '{' || json_value(&p, J_TOP, "", &s, 0))) {
		rc = CTL_FAILED;
		snprintf(t->err, sizeof(t->err), "cannot read batond's status (out of memory?)");
	}
	if (rc == 0)
		parse_buckets(&s, out[1].s);
	free(out[0].s);
	free(out[1].s);
	if (rc) {
		snap_free(&s);
		return rc;
	}
	s.ms = now_ms();
	snap_free(&t->a);
	t->a = t->b;
	t->b = s;
	t->err[0] = '\0';
	return 0;
}

/* Per second since the answer before, or "-" when that is not known. */
static const char *per_s(char *buf, size_t size, unsigned long long now,
			 const unsigned long long *before, double dt)
{
	if (!before || dt <= 0 || now < *before)
		return "-";
	double r = (double)(now - *before) / dt;
	snprintf(buf, size, r >= 100 || r == 0 ? "%.0f" : "%.1f", r);
	return buf;
}

static const char *seconds(char *buf, size_t size, double s)
{
	if (s < 0)
		return "-";
	if (s < 1e-3)
		snprintf(buf, size, "%.0fus", s * 1e6);
	else if (s < 1)
		snprintf(buf, size, "%.2fms", s * 1e3);
	else
		snprintf(buf, size, "%.2fs", s);
	return buf;
}

static void render_program(FILE *f, const struct tprog *p, const struct tprog *pa, double dt)
{
	char r1[24], r2[24], r3[24];
	int running = 0, gen = p->gen, ready = 0;

	for (int k = 0; k < p->nw; k++)
		gen = p->w[k].gen > gen ? p->w[k].gen : gen;
	for (int k = 0; k < p->nw; k++) {
		running += !strcmp(p->w[k].state, "RUNNING");
		ready += !strcmp(p->w[k].state, "RUNNING") && p->w[k].gen == gen;
	}
	fprintf(f, "\n%s: generation %d, %d slots, %d running, queued %llu, accepted/s %s, "
		"dropped %llu, handoff p50 %s p99 %s\n", p->name, p->gen, p->slots, running,
		p->queued, per_s(r1, sizeof(r1), p->accepted, pa ? &pa->accepted : NULL, dt),
		p->dropped, seconds(r2, sizeof(r2), quantile(0.5, pa, p)),
		seconds(r3, sizeof(r3), quantile(0.99, pa, p)));
	/* A program's generation moves when its upgrade is over; until then
	 * the workers of the next one tell how far it got. */
	if (gen > p->gen)
		fprintf(f, "%s: upgrading %d/%d on generation %d\n", p->name, ready, p->slots, gen);
	fprintf(f, "  %-16s %8s %-9s %4s %7s %9s %10s\n", "WORKER", "PID", "STATE", "GEN",
		"CONNS", "HANDED/S", "UPTIME");
	for (int k = 0; k < p->nw; k++) {
		const struct tworker *w = &p->w[k], *wa = NULL;
		char name[80], pid[16] = "-", g[16] = "-", up[32] = "-";
		for (int j = 0; pa && w->pid > 0 && j < pa->nw; j++)
			wa = pa->w[j].pid == w->pid ? &pa->w[j] : wa;
		snprintf(name, sizeof(name), "%s:%d", p->name, w->slot);
		if (w->pid > 0) {
			snprintf(pid, sizeof(pid), "%d", w->pid);
			snprintf(g, sizeof(g), "%d", w->gen);
			snprintf(up, sizeof(up), "%llu:%02llu:%02llu", w->uptime / 3600,
				 w->uptime / 60 % 60, w->uptime % 60);
		}
		fprintf(f, "  %-16s %8s %-9s %4s %7llu %9s %10s\n", name, pid, w->state, g, w->conns,
			per_s(r1, sizeof(r1), w->handed, wa ? &wa->handed : NULL, dt), up);
	}
}

static void render(FILE *f, const struct top *t)
{
	const struct snap *a = t->a.ms ? &t->a : NULL, *b = &t->b;
	double dt = a ? (double)(b->ms - a->ms) / 1000 : 0;
	char r1[24], when[16];
	time_t now = time(NULL);

	strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
	fprintf(f, "batonctl top: batond at %s, %s, every %gs%s\n", t->path, when,
		(double)t->interval / 1000, t->keys ? ", q quits" : "");
	if (t->err[0])
		fprintf(f, "!! %s; trying again; below is what batond said last\n", t->err);
	for (int i = 0; i < b->np; i++) {
		const struct tprog *pa = NULL;
		for (int k = 0; a && k < a->np; k++)
			pa = strcmp(a->p[k].name, b->p[i].name) ? pa : &a->p[k];
		render_program(f, &b->p[i], pa, dt);
	}
	fprintf(f, "\n  %-16s %-28s %-16s %10s %s\n", "LISTENER", "ADDRESS", "PROGRAM",
		"ACCEPTED/S", "PAUSED");
	for (int i = 0; i < b->nl; i++) {
		const struct tlistener *l = &b->l[i], *la = NULL;
		for (int k = 0; a && k < a->nl; k++)
			la = strcmp(a->l[k].name, l->name) ? la : &a->l[k];
		fprintf(f, "  %-16s %-28s %-16s %10s %s\n", l->name, l->addr, l->program,
			per_s(r1, sizeof(r1), l->accepted, la ? &la->accepted : NULL, dt),
			l->paused ? "yes" : "no");
	}
}

/* On a terminal: in place, each line cut to its width, and no more lines
 * than it has.  Otherwise the text as it is, after a blank line if again. */
static void show(const struct top *t, const char *text, int again)
{
	struct winsize ws = {0};
	int row = 0, lines = 0;

	if (!t->tty) {
		printf("%s%s", again ? "\n" : "", text);
		client_flush(stdout);
		return;
	}
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || !ws.ws_col || !ws.ws_row)
		ws.ws_col = 80, ws.ws_row = 24;
	for (const char *l = text; *l; l += strcspn(l, "\n"), l += *l == '\n')
		lines++;
	for (const char *l = text; *l && row < ws.ws_row; row++) {
		int n = (int)strcspn(l, "\n");
		if (row == ws.ws_row - 1 && lines > ws.ws_row)
			printf("\033[%d;1H\033[2K%.*s", row + 1, ws.ws_col, "... (a taller window shows more)");
		else
			printf("\033[%d;1H\033[2K%.*s", row + 1, n < ws.ws_col ? n : ws.ws_col, l);
		l += n + (l[n] == '\n');
	}
	if (row < ws.ws_row)
		printf("\033[%d;1H\033[J", row + 1); /* clear what the last frame had below */
	client_flush(stdout);
}

static void draw(const struct top *t, int again)
{
	char *text = NULL;
	size_t size;
	FILE *f = open_memstream(&text, &size);

	if (!f)
		client_die(CTL_FAILED, "out of memory");
	render(f, t);
	if (fclose(f))
		client_die(CTL_FAILED, "out of memory");
	show(t, text, again);
	free(text);
}

static void term_enter(void)
{
	static const char s[] = "\033[?1049h\033[?25l"; /* alternate screen, cursor off */
	struct termios tio = saved_tio;

	tio.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	tio.c_cc[VMIN] = 1;
	tio.c_cc[VTIME] = 0;
	term_on = 1;
	if (have_tio)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &tio);
	(void)!write(STDOUT_FILENO, s, sizeof(s) - 1);
}

/* Also called from signal handlers: async-signal-safe calls only. */
static void term_leave(void)
{
	static const char s[] = "\033[?25h\033[?1049l";

	if (!term_on)
		return;
	term_on = 0;
	if (have_tio)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tio);
	(void)!write(STDOUT_FILENO, s, sizeof(s) - 1);
}

/* Give the terminal back before dying of sig, or before stopping for it. */
static void on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGWINCH) {
		resized = 1;
	} else if (sig == SIGTSTP) {
		term_leave();
		raise(SIGSTOP);
		term_enter(); /* continued */
		resized = 1;
	} else {
		term_leave();
		signal(sig, SIG_DFL);
		raise(sig); /* delivered once the handler returns */
	}
	errno = saved;
}

static void term_setup(struct top *t)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGWINCH};
	/* No SA_RESTART: a resize must wake the wait to redraw. */
	struct sigaction sa = {.sa_handler = on_signal};

	t->keys = isatty(STDIN_FILENO);
	have_tio = t->keys && tcgetattr(STDIN_FILENO, &saved_tio) == 0;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	atexit(term_leave);
	setvbuf(stdout, NULL, _IOFBF, 1 << 16); /* a frame in one write */
	term_enter();
}

/* Sleep until deadline, redrawing when the window changes: 1 if q was typed. */
static int top_wait(const struct top *t, uint64_t deadline)
{
	for (uint64_t now; (now = now_ms()) < deadline;) {
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		if (poll(&pfd, t->keys ? 1 : 0, (int)(deadline - now)) > 0 && quit_typed())
			return 1;
		if (resized) {
			resized = 0;
			draw(t, 1);
		}
	}
	return 0;
}

/* -i: whole seconds, or a duration as the config file writes them. */
static int parse_interval(const char *s, uint64_t *ms)
{
	long long secs;

	if (util_parse_int(s, 1, 3600, &secs) == 0) {
		*ms = (uint64_t)secs * 1000;
		return 0;
	}
	return util_parse_duration(s, ms) || *ms < 100 || *ms > 3600000 ? -1 : 0;
}

/* top's options and NAMEs into t's requests; frames from -n (0: none). */
static void parse_args(struct top *t, int argc, char **argv, long long *frames)
{
	static const struct option longopts[] = {
		{"iterations", required_argument, NULL, 'n'},
		{"interval", required_argument, NULL, 'i'},
		{NULL, 0, NULL, 0},
	};
	char *words[CTL_ARGS_MAX] = {"status"}, err[256];
	int opt, n = 0;

	optind = 0; /* glibc: start again, on top's own arguments */
	while ((opt = getopt_long(argc, argv, ":n:i:", longopts, NULL)) != -1) {
		if (opt == 'n' && util_parse_int(optarg, 1, INT_MAX, frames))
			client_die(CTL_USAGE, "-n wants a number of frames (1-%d), not '%s'", INT_MAX,
				   optarg);
		else if (opt == 'i' && parse_interval(optarg, &t->interval))
			client_die(CTL_USAGE, "-i wants 100ms to 1h (2, 1s, 500ms), not '%s'", optarg);
		else if (opt == ':')
			client_die(CTL_USAGE, "option %s needs an argument", argv[optind - 1]);
		else if (opt == '?' && optopt)
			client_die(CTL_USAGE, "unknown option -%c; 'batonctl help top' for help", optopt);
		else if (opt == '?')
			client_die(CTL_USAGE, "unknown option %s; 'batonctl help top' for help",
				   argv[optind - 1]);
	}
	while (optind < argc && n + 1 < CTL_ARGS_MAX)
		words[++n] = argv[optind++];
	if (optind < argc)
		client_die(CTL_USAGE, "top: at most %d names", CTL_ARGS_MAX - 1);
	t->len[0] = ctl_format_request(1, n + 1, words, t->req[0], sizeof(t->req[0]), err,
				       sizeof(err));
	if (t->len[0] < 0)
		client_die(CTL_USAGE, "%s", err);
	words[0] = "metrics";
	t->len[1] = ctl_format_request(0, 1, words, t->req[1], sizeof(t->req[1]), err, sizeof(err));
	if (t->len[1] < 0)
		client_die(CTL_FAILED, "%s", err);
}

int top_run(const char *path, long long timeout, int argc, char **argv)
{
	struct top t = {.path = path, .timeout = timeout ? timeout : TOP_TIMEOUT,
			.interval = 1000};
	long long frames = 0;

	parse_args(&t, argc, argv, &frames);
	t.tty = isatty(STDOUT_FILENO);
	if (!t.tty && !frames)
		frames = 1;
	uint64_t started = now_ms();
	int rc = refresh(&t);
	if (rc > 0)
		client_die(rc, "%s", t.err); /* as any other command would */
	if (t.tty)
		term_setup(&t);
	/* Once running, a batond that goes away is shown and asked again. */
	for (long long frame = 0;;) {
		draw(&t, frame > 0);
		if (++frame == frames || top_wait(&t, started + t.interval))
			break;
		started = now_ms();
		if (refresh(&t) < 0)
			break;
	}
	if (t.tty) {
		term_leave();
		/* -n: leave the last frame on the screen it returns to. */
		if (frames) {
			t.tty = t.keys = 0;
			draw(&t, 0);
		}
	}
	snap_free(&t.a);
	snap_free(&t.b);
	return CTL_OK;
}
