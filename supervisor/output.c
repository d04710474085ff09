/* Workers' stdout and stderr: see output.h. */
#include "output.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batond.h"
#include "config.h"
#include "log.h"
#include "state.h"
#include "util.h"

/* An output file, shared by every stream that writes to it. */
struct ofile {
	struct ofile *next;
	char path[PATH_MAX];
	int fd;
	int refs;
};

static struct ofile *files;

struct output {
	char who[CFG_NAME_MAX + 24]; /* "web:0 stdout" */
	int fd, child_fd;
	struct ofile *file; /* NULL: batond's log */
	struct event *ev;
	size_t len;
	char line[OUTPUT_LINE_MAX];
	uint64_t window_ms; /* start of the current second */
	unsigned in_window;
	unsigned long long dropped;
};

static struct ofile *file_get(const char *path)
{
	struct ofile *f;
	for (f = files; f; f = f->next)
		if (strcmp(f->path, path) == 0) {
			f->refs++;
			return f;
		}
	char why[128];
	int fd = log_open_append(path, why, sizeof(why));
	if (fd == LOG_OPEN_REFUSED) {
		log_error("refusing output file path=%s reason=\"%s\"; logging it instead", path,
			  why);
		return NULL;
	}
	if (fd < 0) {
		log_error("cannot open worker output file path=%s error=\"%s\"; logging it instead",
			  path, why);
		return NULL;
	}
	if (!(f = calloc(1, sizeof(*f)))) {
		close(fd);
		return NULL;
	}
	snprintf(f->path, sizeof(f->path), "%s", path);
	f->fd = fd;
	f->refs = 1;
	f->next = files;
	files = f;
	return f;
}

static void file_put(struct ofile *f)
{
	if (!f || --f->refs > 0)
		return;
	for (struct ofile **pp = &files; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	close(f->fd);
	free(f);
}

int output_mode_valid(const char *mode)
{
	return strcmp(mode, "log") == 0 || strcmp(mode, "inherit") == 0 || mode[0] == '/';
}

/* One line of output, as text that cannot break the log's line format. */
static void emit(struct output *o, const char *text, size_t len)
{
	uint64_t now = now_ms();
	char clean[OUTPUT_LINE_MAX];

	if (now - o->window_ms >= 1000) {
		if (o->dropped)
			log_warn("%s: %llu lines dropped (more than %d a second)", o->who, o->dropped,
				 OUTPUT_RATE);
		o->window_ms = now;
		o->in_window = 0;
		o->dropped = 0;
	}
	if (++o->in_window > OUTPUT_RATE) {
		o->dropped++;
		return;
	}
	if (len && text[len - 1] == '\r')
		len--;
	/* Controls (C0, DEL, C1) and bytes that are not UTF-8 become '?'. */
	len = log_sanitize(clean, text, len);
	if (!o->file) {
		log_info("%s: %.*s", o->who, (int)len, clean);
		return;
	}
	char line[OUTPUT_LINE_MAX + 128], ts[32];
	struct timespec t;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &t);
	gmtime_r(&t.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	int n = snprintf(line, sizeof(line), "%s.%03ldZ %s: %.*s\n", ts, t.tv_nsec / 1000000,
			 o->who, (int)len, clean);
	if (n > 0 && write(o->file->fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line)) < 0)
		log_debug("%s: cannot write to %s: %s", o->who, o->file->path, strerror(errno));
}

/* Split what is in the buffer into lines; keep a partial one. */
static void take_lines(struct output *o, const char *data, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (data[i] == '\n') {
			emit(o, o->line, o->len);
			o->len = 0;
			continue;
		}
		if (o->len == sizeof(o->line)) { /* over-long: cut it here */
			emit(o, o->line, o->len);
			o->len = 0;
		}
		o->line[o->len++] = data[i];
	}
}

/* Read at most OUTPUT_READ_MAX bytes; 1 at end of file. */
static int drain(struct output *o)
{
	char buf[8192];
	size_t total = 0;
	while (total < OUTPUT_READ_MAX) {
		ssize_t n = read(o->fd, buf, sizeof(buf));
		if (n > 0) {
			take_lines(o, buf, (size_t)n);
			total += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
	}
	return 0;
}

static void readable(evutil_socket_t fd, short what, void *arg)
{
	struct output *o = arg;
	(void)fd;
	(void)what;
	if (drain(o)) { /* the worker (and anything it started) closed it */
		event_del(o->ev);
		if (o->len)
			emit(o, o->line, o->len);
		o->len = 0;
	}
}

struct output *output_new(const char *program, int slot, int stream, const char *mode,
			  int *child_fd)
{
	int p[2];
	struct output *o;

	*child_fd = -1;
	if (strcmp(mode, "inherit") == 0)
		return NULL;
	if (!(o = calloc(1, sizeof(*o))))
		return NULL;
	snprintf(o->who, sizeof(o->who), "%s:%d %s", program, slot,
		 stream == 1 ? "stdout" : "stderr");
	if (mode[0] == '/')
		o->file = file_get(mode); /* NULL (logged): batond's log instead */
	if (pipe2(p, O_CLOEXEC) < 0) {
		log_error("cannot capture %s error=\"%s\"; it inherits batond's", o->who,
			  strerror(errno));
		file_put(o->file);
		free(o);
		return NULL;
	}
	fd_set_nonblock(p[0]);
	o->fd = p[0];
	o->child_fd = *child_fd = p[1];
	o->window_ms = now_ms();
	return o;
}

void output_started(struct output *o, pid_t pid)
{
	if (!o)
		return;
	(void)pid;
	close(o->child_fd);
	o->child_fd = -1;
	o->ev = event_new(batond.base, o->fd, EV_READ | EV_PERSIST, readable, o);
	if (!o->ev || event_add(o->ev, NULL) < 0)
		fatal("out of memory");
}

void output_free(struct output *o)
{
	if (!o)
		return;
	if (o->child_fd >= 0)
		close(o->child_fd);
	drain(o); /* what the worker wrote last; descendants may hold it open */
	if (o->len)
		emit(o, o->line, o->len);
	if (o->dropped)
		log_warn("%s: %llu lines dropped (more than %d a second)", o->who, o->dropped,
			 OUTPUT_RATE);
	if (o->ev)
		event_free(o->ev);
	close(o->fd);
	file_put(o->file);
	free(o);
}

int output_reopen(char *err, size_t errlen)
{
	int rc = 0;
	char why[128];
	for (struct ofile *f = files; f; f = f->next) {
		/* On failure the streams write on to the file they have: it was
		 * checked when it was opened. */
		int fd = log_open_append(f->path, why, sizeof(why));
		if (fd < 0) {
			if (rc == 0 && fd == LOG_OPEN_REFUSED)
				snprintf(err, errlen,
					 "refusing output file path=%s reason=\"%s\"; writing on to the old one",
					 f->path, why);
			else if (rc == 0)
				snprintf(err, errlen, "cannot reopen %s: %s", f->path, why);
			rc = -1;
			continue;
		}
		dup3(fd, f->fd, O_CLOEXEC); /* same fd number: nothing else to update */
		close(fd);
	}
	return rc;
}

void output_save(const struct output *o, struct state_out *so, const char *key)
{
	char k[48];
	if (!o)
		return;
	snprintf(k, sizeof(k), "%s.fd", key);
	state_fd(so, k, o->fd);
	snprintf(k, sizeof(k), "%s.partial", key);
	state_bytes(so, k, o->line, o->len);
	snprintf(k, sizeof(k), "%s.dropped", key);
	state_u64(so, k, o->dropped);
}

int output_adopt(struct output **out, const struct state_rec *r, const char *key,
		 const char *program, int slot, int stream, const char *mode, char *err,
		 size_t errlen)
{
	char k[48];
	long long fd;
	struct stat sb;

	*out = NULL;
	snprintf(k, sizeof(k), "%s.fd", key);
	if (!state_get(r, k))
		return 0; /* inherit, or could not be captured */
	if (state_get_int(r, k, 0, INT_MAX, &fd, err, errlen) < 0)
		return -1;
	if (fstat((int)fd, &sb) < 0 || !S_ISFIFO(sb.st_mode)) {
		snprintf(err, errlen, "%s: %s: fd %lld is not a pipe", r->type, k, fd);
		return -1;
	}
	struct output *o = calloc(1, sizeof(*o));
	if (!o) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(o->who, sizeof(o->who), "%s:%d %s", program, slot, stream == 1 ? "stdout" : "stderr");
	snprintf(k, sizeof(k), "%s.partial", key);
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->f[i].key, k) == 0 && r->f[i].len < sizeof(o->line)) {
			memcpy(o->line, r->f[i].val, r->f[i].len);
			o->len = r->f[i].len;
		}
	snprintf(k, sizeof(k), "%s.dropped", key);
	uint64_t dropped = 0;
	if (state_opt_u64(r, k, &dropped, err, errlen) < 0) {
		free(o);
		return -1;
	}
	o->dropped = dropped;
	o->fd = (int)fd;
	o->child_fd = -1;
	o->window_ms = now_ms();
	fd_set_nonblock(o->fd);
	if (mode[0] == '/')
		o->file = file_get(mode); /* opened again: checked again */
	*out = o;
	return 0;
}
