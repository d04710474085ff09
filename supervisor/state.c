/* The reexec state codec: see state.h and STATE.md. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TYPE_MAX 32
#define KEY_MAX 64

uint64_t state_checksum(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* ---- writing ---- */

void state_out_init(struct state_out *o)
{
	memset(o, 0, sizeof(*o));
}

void state_out_free(struct state_out *o)
{
	free(o->buf);
	free(o->fds);
	memset(o, 0, sizeof(*o));
}

static void put(struct state_out *o, const void *data, size_t n)
{
	if (o->failed)
		return;
	if (o->len + n > STATE_MAX_BYTES) {
		o->failed = 1;
		return;
	}
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n)
			cap *= 2;
		char *b = realloc(o->buf, cap);
		if (!b) {
			o->failed = 1;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, data, n);
	o->len += n;
}

static void puts_(struct state_out *o, const char *s)
{
	put(o, s, strlen(s));
}

void state_record(struct state_out *o, const char *type, int required)
{
	put(o, required ? "+" : "?", 1);
	puts_(o, type);
	put(o, "\n", 1);
}

void state_bytes(struct state_out *o, const char *key, const void *val, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *v = val;
	puts_(o, key);
	put(o, " ", 1);
	for (size_t i = 0; i < len; i++) {
		if (v[i] > 0x20 && v[i] < 0x7f && v[i] != '%') {
			put(o, &v[i], 1);
		} else {
			char e[3] = {'%', hex[v[i] >> 4], hex[v[i] & 15]};
			put(o, e, 3);
		}
	}
	put(o, "\n", 1);
}

void state_str(struct state_out *o, const char *key, const char *val)
{
	state_bytes(o, key, val, strlen(val));
}

void state_u64(struct state_out *o, const char *key, uint64_t val)
{
	char b[24];
	snprintf(b, sizeof(b), "%" PRIu64, val);
	state_str(o, key, b);
}

void state_i64(struct state_out *o, const char *key, int64_t val)
{
	char b[24];
	snprintf(b, sizeof(b), "%" PRId64, val);
	state_str(o, key, b);
}

void state_fd(struct state_out *o, const char *key, int fd)
{
	state_i64(o, key, fd);
	if (fd < 0 || o->failed)
		return;
	if (o->nfds == o->fdcap) {
		int cap = o->fdcap ? o->fdcap * 2 : 64;
		int *f = cap <= STATE_FDS_MAX ? realloc(o->fds, (size_t)cap * sizeof(*f)) : NULL;
		if (!f) {
			o->failed = 1;
			return;
		}
		o->fds = f;
		o->fdcap = cap;
	}
	o->fds[o->nfds++] = fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int state_seal(struct state_out *o, char *err, size_t errlen)
{
	char head[96];
	if (o->failed) {
		snprintf(err, errlen, "cannot build the state: out of memory or over %u MiB",
			 STATE_MAX_BYTES >> 20);
		return -1;
	}
	int n = snprintf(head, sizeof(head), "baton-state %d %zu %016" PRIx64 "\n",
			 BATON_STATE_VERSION, o->len, state_checksum(o->buf, o->len));
	int fd = memfd_create("baton-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		return -1;
	}
	if (write_all(fd, head, (size_t)n) < 0 || write_all(fd, o->buf, o->len) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
		snprintf(err, errlen, "writing the state: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- reading ---- */

int state_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int name_ok(const char *s, size_t n, size_t max, int dots)
{
	if (n == 0 || n >= max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      (dots && s[i] == '.')))
			return 0;
	return 1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Unescape v (n bytes, in place); its new length, or -1. */
static long unescape(char *v, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c <= 0x20 || c >= 0x7f)
			return -1;
		if (c == '%') {
			int h, l;
			if (i + 2 >= n || (h = hexval(v[i + 1])) < 0 || (l = hexval(v[i + 2])) < 0)
				return -1;
			v[o++] = (char)(h << 4 | l);
			i += 2;
		} else {
			v[o++] = (char)c;
		}
	}
	v[o] = '\0';
	return (long)o;
}

/* A run of decimal digits at *p ending at sep (no sign, no blanks, no
 * leading zero but "0" itself, at most max): the value, and *p past sep. */
static int dec_field(const char **p, const char *end, char sep, unsigned long long max,
		     unsigned long long *v)
{
	const char *s = *p;
	unsigned long long x = 0;
	if (s >= end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end && s[1] != sep))
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (x > (max - (unsigned)(*s - '0')) / 10)
			return -1;
		x = x * 10 + (unsigned)(*s - '0');
	}
	if (s >= end || *s != sep)
		return -1;
	*v = x;
	*p = s + 1;
	return 0;
}

/* "baton-state VERSION LENGTH CHECKSUM\n", exactly as state_seal() writes
 * it: single spaces, decimal VERSION and LENGTH, 16 lower-case hex digits. */
static int parse_header(const char *data, size_t len, size_t *body, uint32_t *version,
			char *err, size_t errlen)
{
	static const char magic[] = "baton-state ";
	const char *nl = memchr(data, '\n', len < 96 ? len : 96);
	unsigned long long ver, blen;
	uint64_t sum = 0;

	if (!nl)
		return state_fail(err, errlen, "not a baton state (no header line)");
	const char *p = data + sizeof(magic) - 1;
	if ((size_t)(nl - data) < sizeof(magic) - 1 || memcmp(data, magic, sizeof(magic) - 1) != 0 ||
	    dec_field(&p, nl, ' ', UINT32_MAX, &ver) != 0 ||
	    dec_field(&p, nl, ' ', STATE_MAX_BYTES, &blen) != 0 || nl - p != 16)
		return state_fail(err, errlen, "not a baton state (bad header)");
	for (; p < nl; p++) {
		int h = *p >= 'A' && *p <= 'F' ? -1 : hexval(*p); /* lower case only */
		if (h < 0)
			return state_fail(err, errlen, "not a baton state (bad header)");
		sum = sum << 4 | (uint64_t)h;
	}
	*version = (uint32_t)ver;
	if (ver != BATON_STATE_VERSION)
		return state_fail(err, errlen, "state version %llu: this batond reads version %d only", ver,
			    BATON_STATE_VERSION);
	*body = (size_t)(nl - data) + 1;
	if (blen != len - *body)
		return state_fail(err, errlen, "state truncated or padded: body %zu bytes, header says %llu",
			    len - *body, blen);
	if (state_checksum(data + *body, len - *body) != sum)
		return state_fail(err, errlen, "state checksum mismatch");
	return 0;
}

static int grow(void **arr, int n, int *cap, size_t size)
{
	if (n < *cap)
		return 0;
	int c = *cap ? *cap * 2 : 16;
	void *a = realloc(*arr, (size_t)c * size);
	if (!a)
		return -1;
	*arr = a;
	*cap = c;
	return 0;
}

int state_parse(const char *data, size_t len, struct state *st, char *err, size_t errlen)
{
	size_t body = 0;
	int reccap = 0, fcapn = 0, line = 1;
	int *fcap = NULL; /* each record's field capacity */

	memset(st, 0, sizeof(*st));
	if (len > STATE_MAX_BYTES + 128)
		return state_fail(err, errlen, "state larger than %u MiB", STATE_MAX_BYTES >> 20);
	if (parse_header(data, len, &body, &st->version, err, errlen) < 0)
		return -1;
	len -= body;
	if (len && data[body + len - 1] != '\n')
		return state_fail(err, errlen, "state: last line not terminated");
	if (!(st->text = malloc(len + 1)))
		return state_fail(err, errlen, "out of memory");
	memcpy(st->text, data + body, len);
	st->text[len] = '\0';
	for (char *p = st->text, *end = st->text + len; p < end; line++) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)(nl - p);
		*nl = '\0';
		if (p[0] == '+' || p[0] == '?') {
			if (!name_ok(p + 1, n - 1, TYPE_MAX, 0)) {
				state_fail(err, errlen, "state line %d: bad record type", line);
				goto bad;
			}
			if (grow((void **)&st->rec, st->nrec, &reccap, sizeof(*st->rec)) < 0 ||
			    grow((void **)&fcap, st->nrec, &fcapn, sizeof(int)) < 0)
				goto nomem;
			fcap[st->nrec] = 0;
			st->rec[st->nrec++] = (struct state_rec){.type = p + 1, .required = p[0] == '+'};
		} else {
			char *sp = memchr(p, ' ', n);
			if (!st->nrec) {
				state_fail(err, errlen, "state line %d: a field before any record", line);
				goto bad;
			}
			if (!sp || !name_ok(p, (size_t)(sp - p), KEY_MAX, 1)) {
				state_fail(err, errlen, "state line %d: bad field", line);
				goto bad;
			}
			*sp = '\0';
			long vl = unescape(sp + 1, (size_t)(nl - sp - 1));
			if (vl < 0) {
				state_fail(err, errlen, "state line %d: bad value of %s", line, p);
				goto bad;
			}
			struct state_rec *r = &st->rec[st->nrec - 1];
			if (grow((void **)&r->f, r->n, &fcap[st->nrec - 1], sizeof(*r->f)) < 0)
				goto nomem;
			r->f[r->n++] = (struct state_field){.key = p, .val = sp + 1, .len = (size_t)vl};
		}
		p = nl + 1;
	}
	free(fcap);
	return 0;
nomem:
	state_fail(err, errlen, "out of memory");
bad:
	free(fcap);
	state_free(st);
	return -1;
}

int state_read_fd(int fd, struct state *st, char *err, size_t errlen)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return state_fail(err, errlen, "state fd %d: %s", fd, strerror(errno));
	if (!S_ISREG(sb.st_mode) || sb.st_size > (off_t)STATE_MAX_BYTES + 128)
		return state_fail(err, errlen, "state fd %d: not a state file", fd);
	size_t len = (size_t)sb.st_size, got = 0;
	char *buf = malloc(len ? len : 1);
	if (!buf)
		return state_fail(err, errlen, "out of memory");
	while (got < len) {
		ssize_t r = pread(fd, buf + got, len - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(buf);
			return state_fail(err, errlen, "reading the state: %s",
				    r < 0 ? strerror(errno) : "short file");
		}
		got += (size_t)r;
	}
	int rc = state_parse(buf, len, st, err, errlen);
	free(buf);
	return rc;
}

void state_free(struct state *st)
{
	for (int i = 0; i < st->nrec; i++)
		free(st->rec[i].f);
	free(st->rec);
	free(st->text);
	memset(st, 0, sizeof(*st));
}

const char *state_get(const struct state_rec *r, const char *key)
{
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->f[i].key, key) == 0)
			return r->f[i].val;
	return NULL;
}

int state_get_str(const struct state_rec *r, const char *key, char *buf, size_t size, char *err,
		  size_t errlen)
{
	for (int i = 0; i < r->n; i++) {
		if (strcmp(r->f[i].key, key) != 0)
			continue;
		if (r->f[i].len >= size || memchr(r->f[i].val, '\0', r->f[i].len))
			return state_fail(err, errlen, "%s: %s too long or holds a NUL byte", r->type, key);
		memcpy(buf, r->f[i].val, r->f[i].len + 1);
		return 0;
	}
	return state_fail(err, errlen, "%s: %s missing", r->type, key);
}

/* A field's value as a decimal number: digits only (after one '-' where
 * neg allows it), no NUL inside, no leading zero, no "-0".  The magnitude
 * in *x, the sign in *minus; -1 when it is not such a number or overflows. */
static int field_number(const struct state_field *f, int neg, int *minus, unsigned long long *x)
{
	const char *p = f->val, *end = f->val + f->len; /* val[len] is the NUL */
	*minus = neg && p < end && *p == '-';
	p += *minus;
	if (memchr(f->val, '\0', f->len) ||
	    dec_field(&p, end + 1, '\0', *minus ? (unsigned long long)LLONG_MAX + 1 : UINT64_MAX, x) != 0)
		return -1;
	return *minus && *x == 0 ? -1 : 0;
}

static const struct state_field *field(const struct state_rec *r, const char *key)
{
	for (int i = 0; i < r->n; i++)
		if (strcmp(r->f[i].key, key) == 0)
			return &r->f[i];
	return NULL;
}

int state_opt_u64(const struct state_rec *r, const char *key, uint64_t *v, char *err,
		  size_t errlen)
{
	const struct state_field *f = field(r, key);
	unsigned long long x;
	int minus;
	if (!f)
		return 0;
	if (field_number(f, 0, &minus, &x) != 0)
		return state_fail(err, errlen, "%s: %s: bad number '%.32s'", r->type, key, f->val);
	*v = x;
	return 0;
}

int state_get_u64(const struct state_rec *r, const char *key, uint64_t *v, char *err,
		  size_t errlen)
{
	if (!field(r, key))
		return state_fail(err, errlen, "%s: %s missing", r->type, key);
	return state_opt_u64(r, key, v, err, errlen);
}

int state_get_int(const struct state_rec *r, const char *key, long long min, long long max,
		  long long *v, char *err, size_t errlen)
{
	const struct state_field *f = field(r, key);
	unsigned long long x;
	int minus;
	if (!f)
		return state_fail(err, errlen, "%s: %s missing", r->type, key);
	if (field_number(f, 1, &minus, &x) != 0 || (!minus && x > (unsigned long long)LLONG_MAX))
		return state_fail(err, errlen, "%s: %s: bad value '%.32s'", r->type, key, f->val);
	long long y = !minus ? (long long)x : x > (unsigned long long)LLONG_MAX ? LLONG_MIN : -(long long)x;
	if (y < min || y > max)
		return state_fail(err, errlen, "%s: %s: bad value '%.32s'", r->type, key, f->val);
	*v = y;
	return 0;
}
