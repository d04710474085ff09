/*
 * The reexec state codec, supervisor/state.c: records and fields written
 * and read back (escaping of every byte), the typed getters and their
 * bounds, the sealed memfd, and hostile input, each refused with its
 * reason.  Then a section of the config saved into a record and restored
 * from it (config_save_section / config_restore_section), as a reexec
 * carries the config in force.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "config_keys.h"
#include "state.h"

#define ERRLEN 512

/* ---- helpers ---- */

/*
 * A state text: "baton-state VERSION LEN SUM\n" and body, into a new
 * buffer (freed by the caller); *len its length.  len_delta is added to
 * the body length the header says, sum_xor flips bits of its checksum.
 */
static char *make_state(unsigned version, const char *body, size_t blen, long long len_delta,
			uint64_t sum_xor, size_t *len)
{
	char head[128];
	int n = snprintf(head, sizeof(head), "baton-state %u %llu %016" PRIx64 "\n", version,
			 (unsigned long long)((long long)blen + len_delta),
			 state_checksum(body, blen) ^ sum_xor);
	char *s = malloc((size_t)n + blen + 1);
	assert_non_null(s);
	memcpy(s, head, (size_t)n);
	memcpy(s + n, body, blen);
	s[(size_t)n + blen] = '\0';
	*len = (size_t)n + blen;
	return s;
}

/* Parse body (a C string) under a correct header: 0 or -1 as state_parse. */
static int parse_body(const char *body, struct state *st, char *err)
{
	size_t len;
	char *s = make_state(BATON_STATE_VERSION, body, strlen(body), 0, 0, &len);
	int rc = state_parse(s, len, st, err, ERRLEN);
	free(s);
	return rc;
}

static void assert_contains(const char *text, const char *want)
{
	if (!strstr(text, want))
		fail_msg("'%s' does not contain '%s'", text, want);
}

/* A failed parse says why and leaves nothing to free. */
static void assert_refused(const char *data, size_t len, const char *want)
{
	struct state st;
	char err[ERRLEN];
	memset(&st, 0x5a, sizeof(st));
	memset(err, 'X', sizeof(err));
	if (state_parse(data, len, &st, err, sizeof(err)) != -1) {
		state_free(&st);
		fail_msg("accepted: '%.*s' (wanted: %s)", (int)len, data, want);
	}
	assert_non_null(memchr(err, '\0', sizeof(err)));
	assert_contains(err, want);
	assert_null(st.text);
	assert_null(st.rec);
	assert_int_equal(st.nrec, 0);
}

static void assert_body_refused(const char *body, size_t blen, const char *want)
{
	size_t len;
	char *s = make_state(BATON_STATE_VERSION, body, blen, 0, 0, &len);
	assert_refused(s, len, want);
	free(s);
}

#define BODY_REFUSED(lit, want) assert_body_refused(lit, sizeof(lit) - 1, want)

/* Parse the writer's body as the reader would (header added here). */
static void parse_out(const struct state_out *o, struct state *st)
{
	char err[ERRLEN] = "";
	size_t len;
	assert_int_equal(o->failed, 0);
	char *s = make_state(BATON_STATE_VERSION, o->buf ? o->buf : "", o->len, 0, 0, &len);
	int rc = state_parse(s, len, st, err, sizeof(err));
	free(s);
	if (rc != 0)
		fail_msg("state_parse: %s", err);
}

/* The sealed memfd of o, read back with state_read_fd. */
static void seal_and_read(struct state_out *o, struct state *st)
{
	char err[ERRLEN] = "";
	int fd = state_seal(o, err, sizeof(err));
	if (fd < 0)
		fail_msg("state_seal: %s", err);
	if (state_read_fd(fd, st, err, sizeof(err)) != 0)
		fail_msg("state_read_fd: %s", err);
	close(fd);
}

/* ---- writing ---- */

static void test_write_escapes(void **state)
{
	(void)state;
	struct state_out o;
	static const unsigned char odd[] = {'!', '~', 0x00, 0x1f, 0x20, 0x25, 0x7f, 0x80, 0xff, 'z'};
	state_out_init(&o);
	state_record(&o, "rec", 1);
	state_str(&o, "s", "a b%c\nd");
	state_str(&o, "empty", "");
	state_bytes(&o, "b", odd, sizeof(odd));
	state_record(&o, "opt_1", 0);
	state_u64(&o, "u", UINT64_MAX);
	state_i64(&o, "i", INT64_MIN);
	state_fd(&o, "none", -1);
	state_fd(&o, "fd.a", 5);
	state_fd(&o, "fd.b", 7);
	static const char want[] = "+rec\n"
				   "s a%20b%25c%0ad\n"
				   "empty \n"
				   "b !~%00%1f%20%25%7f%80%ffz\n"
				   "?opt_1\n"
				   "u 18446744073709551615\n"
				   "i -9223372036854775808\n"
				   "none -1\n"
				   "fd.a 5\n"
				   "fd.b 7\n";
	assert_int_equal(o.failed, 0);
	assert_int_equal(o.len, sizeof(want) - 1);
	assert_memory_equal(o.buf, want, sizeof(want) - 1);
	/* Only the real fds cross the exec. */
	assert_int_equal(o.nfds, 2);
	assert_int_equal(o.fds[0], 5);
	assert_int_equal(o.fds[1], 7);
	state_out_free(&o);
	assert_null(o.buf);
	assert_null(o.fds);
}

static void test_roundtrip(void **state)
{
	(void)state;
	struct state_out o;
	struct state st;
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;

	state_out_init(&o);
	state_record(&o, "first", 1);
	state_str(&o, "spaces", "  two  spaces  ");
	state_str(&o, "percent", "100% %41 %%");
	state_str(&o, "lines", "one\ntwo\r\n");
	state_bytes(&o, "all", all, sizeof(all));
	state_bytes(&o, "nul", "a\0b", 3);
	state_str(&o, "empty", "");
	state_record(&o, "second", 0);
	state_u64(&o, "u0", 0);
	state_u64(&o, "umax", UINT64_MAX);
	state_i64(&o, "imin", INT64_MIN);
	state_i64(&o, "imax", INT64_MAX);
	state_i64(&o, "minus", -1);
	state_fd(&o, "fd", 3);
	state_record(&o, "empty_record", 1);
	state_record(&o, "third", 1);
	state_str(&o, "dotted.key_9", "x");

	parse_out(&o, &st);
	assert_int_equal(st.version, BATON_STATE_VERSION);
	assert_int_equal(st.nrec, 4);
	assert_string_equal(st.rec[0].type, "first");
	assert_int_equal(st.rec[0].required, 1);
	assert_string_equal(st.rec[1].type, "second");
	assert_int_equal(st.rec[1].required, 0);
	assert_string_equal(st.rec[2].type, "empty_record");
	assert_int_equal(st.rec[2].n, 0);
	assert_string_equal(st.rec[3].type, "third");

	const struct state_rec *r = &st.rec[0];
	assert_int_equal(r->n, 6);
	assert_string_equal(r->f[0].key, "spaces");
	assert_string_equal(state_get(r, "spaces"), "  two  spaces  ");
	assert_string_equal(state_get(r, "percent"), "100% %41 %%");
	assert_string_equal(state_get(r, "lines"), "one\ntwo\r\n");
	assert_string_equal(r->f[3].key, "all");
	assert_int_equal(r->f[3].len, 256);
	assert_memory_equal(r->f[3].val, all, 256);
	assert_int_equal(r->f[3].val[256], '\0');
	assert_int_equal(r->f[4].len, 3);
	assert_memory_equal(r->f[4].val, "a\0b", 4);
	assert_int_equal(r->f[5].len, 0);
	assert_string_equal(state_get(r, "empty"), "");

	char err[ERRLEN];
	uint64_t u;
	long long v;
	r = &st.rec[1];
	assert_int_equal(state_get_u64(r, "u0", &u, err, sizeof(err)), 0);
	assert_int_equal(u, 0);
	assert_int_equal(state_get_u64(r, "umax", &u, err, sizeof(err)), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(state_get_int(r, "imin", LLONG_MIN, LLONG_MAX, &v, err, sizeof(err)), 0);
	assert_true(v == LLONG_MIN);
	assert_int_equal(state_get_int(r, "imax", LLONG_MIN, LLONG_MAX, &v, err, sizeof(err)), 0);
	assert_true(v == LLONG_MAX);
	assert_int_equal(state_get_int(r, "minus", -1, 0, &v, err, sizeof(err)), 0);
	assert_int_equal(v, -1);
	assert_int_equal(state_get_int(r, "fd", 0, INT_MAX, &v, err, sizeof(err)), 0);
	assert_int_equal(v, 3);
	assert_string_equal(state_get(&st.rec[3], "dotted.key_9"), "x");
	state_free(&st);
	assert_null(st.rec);
	assert_int_equal(st.nrec, 0);
	state_out_free(&o);
}

static void test_seal_memfd(void **state)
{
	(void)state;
	struct state_out o;
	struct state st;
	char err[ERRLEN] = "";

	state_out_init(&o);
	state_record(&o, "sealed", 1);
	state_str(&o, "value", "a b");
	int fd = state_seal(&o, err, sizeof(err));
	if (fd < 0)
		fail_msg("state_seal: %s", err);

	int seals = fcntl(fd, F_GET_SEALS);
	assert_true(seals >= 0);
	assert_true(seals & F_SEAL_WRITE);
	assert_true(seals & F_SEAL_SHRINK);
	assert_true(seals & F_SEAL_GROW);
	assert_true(seals & F_SEAL_SEAL);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC); /* the committer clears it on its copy */
	/* Nothing can change it: not a write, not a truncation, no new seal undone. */
	assert_int_equal(pwrite(fd, "X", 1, 0), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(write(fd, "X", 1), -1);
	assert_int_equal(ftruncate(fd, 0), -1);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);

	/* The header as STATE.md says. */
	char head[128], want[128];
	ssize_t n = pread(fd, head, sizeof(head) - 1, 0);
	assert_true(n > 0);
	head[n] = '\0';
	*strchr(head, '\n') = '\0';
	snprintf(want, sizeof(want), "baton-state %d %zu %016" PRIx64, BATON_STATE_VERSION, o.len,
		 state_checksum(o.buf, o.len));
	assert_string_equal(head, want);
	struct stat sb;
	assert_int_equal(fstat(fd, &sb), 0);
	assert_int_equal((size_t)sb.st_size, strlen(want) + 1 + o.len);

	/* Read from offset 0 whatever the file position: twice. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(state_read_fd(fd, &st, err, sizeof(err)), 0);
		assert_int_equal(st.version, BATON_STATE_VERSION);
		assert_int_equal(st.nrec, 1);
		assert_string_equal(st.rec[0].type, "sealed");
		assert_string_equal(state_get(&st.rec[0], "value"), "a b");
		state_free(&st);
	}
	close(fd);
	state_out_free(&o);

	/* An empty state seals and reads back as no record. */
	state_out_init(&o);
	seal_and_read(&o, &st);
	assert_int_equal(st.nrec, 0);
	state_free(&st);
	state_out_free(&o);
}

static void test_seal_refused(void **state)
{
	(void)state;
	struct state_out o;
	char err[ERRLEN] = "";

	/* Over STATE_MAX_BYTES: the writer stops, the seal says why. */
	state_out_init(&o);
	state_record(&o, "big", 1);
	char *big = malloc(1u << 20);
	assert_non_null(big);
	memset(big, 'a', 1u << 20);
	for (unsigned i = 0; i <= STATE_MAX_BYTES >> 20 && !o.failed; i++)
		state_bytes(&o, "chunk", big, 1u << 20);
	free(big);
	assert_int_equal(o.failed, 1);
	assert_true(o.len <= STATE_MAX_BYTES);
	assert_int_equal(state_seal(&o, err, sizeof(err)), -1);
	assert_contains(err, "cannot build the state");
	state_out_free(&o);

	/* Out of memory, as the writer marks it. */
	state_out_init(&o);
	state_record(&o, "x", 1);
	o.failed = 1;
	state_str(&o, "ignored", "y");
	assert_int_equal(o.len, 3);
	assert_int_equal(state_seal(&o, err, sizeof(err)), -1);
	state_out_free(&o);
}

static void test_read_fd_refused(void **state)
{
	(void)state;
	struct state st;
	char err[ERRLEN];
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(state_read_fd(p[0], &st, err, sizeof(err)), -1);
	assert_contains(err, "not a state file");
	close(p[0]);
	close(p[1]);
	assert_int_equal(state_read_fd(p[0], &st, err, sizeof(err)), -1);
	assert_contains(err, "state fd");

	/* A regular file that is not a state. */
	int fd = memfd_create("not-a-state", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello\n", 6), 6);
	assert_int_equal(state_read_fd(fd, &st, err, sizeof(err)), -1);
	assert_contains(err, "not a baton state");
	close(fd);
}

/* ---- getters ---- */

static void test_get_u64(void **state)
{
	(void)state;
	struct state st;
	char err[ERRLEN];
	uint64_t v;
	assert_int_equal(parse_body("+nums\n"
				    "zero 0\n"
				    "max 18446744073709551615\n"
				    "over 18446744073709551616\n"
				    "neg -1\n"
				    "plus +1\n"
				    "empty \n"
				    "junk 12x\n"
				    "hex 0x10\n"
				    "blank %201\n"
				    "tab %091\n"
				    "nul 1%002\n"
				    "zeros 007\n",
				    &st, err),
			 0);
	const struct state_rec *r = &st.rec[0];
	assert_int_equal(state_get_u64(r, "zero", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 0);
	assert_int_equal(state_get_u64(r, "max", &v, err, sizeof(err)), 0);
	assert_true(v == UINT64_MAX);
	static const char *const bad[] = {"over",  "neg", "plus", "empty", "junk",
					  "hex",   "blank", "tab", "nul",  "zeros"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 42;
		memset(err, 0, sizeof(err));
		if (state_get_u64(r, bad[i], &v, err, sizeof(err)) != -1)
			fail_msg("u64 %s accepted as %" PRIu64, bad[i], v);
		assert_int_equal(v, 42);
		char want[64];
		snprintf(want, sizeof(want), "nums: %s: bad number", bad[i]);
		assert_contains(err, want);
		v = 42;
		assert_int_equal(state_opt_u64(r, bad[i], &v, err, sizeof(err)), -1);
		assert_int_equal(v, 42);
	}
	/* Missing: an error for get, nothing for opt (v as it was). */
	assert_int_equal(state_get_u64(r, "absent", &v, err, sizeof(err)), -1);
	assert_string_equal(err, "nums: absent missing");
	v = 42;
	assert_int_equal(state_opt_u64(r, "absent", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 42);
	assert_int_equal(state_opt_u64(r, "max", &v, err, sizeof(err)), 0);
	assert_true(v == UINT64_MAX);
	state_free(&st);
}

static void test_get_int(void **state)
{
	(void)state;
	struct state st;
	char err[ERRLEN];
	long long v;
	assert_int_equal(parse_body("+ints\n"
				    "m1 -1\n"
				    "zero 0\n"
				    "ten 10\n"
				    "big 9223372036854775807\n"
				    "over 9223372036854775808\n"
				    "under -9223372036854775809\n"
				    "plus +5\n"
				    "empty \n"
				    "junk 5x\n"
				    "small -9223372036854775808\n"
				    "blank %205\n"
				    "nul 5%00\n"
				    "zeros 05\n"
				    "mzero -0\n"
				    "mzeros -05\n"
				    "minus -\n",
				    &st, err),
			 0);
	const struct state_rec *r = &st.rec[0];
	/* Bounds are inclusive. */
	assert_int_equal(state_get_int(r, "m1", -1, INT_MAX, &v, err, sizeof(err)), 0);
	assert_int_equal(v, -1);
	assert_int_equal(state_get_int(r, "ten", 0, 10, &v, err, sizeof(err)), 0);
	assert_int_equal(v, 10);
	assert_int_equal(state_get_int(r, "zero", 0, 0, &v, err, sizeof(err)), 0);
	assert_int_equal(state_get_int(r, "big", 0, LLONG_MAX, &v, err, sizeof(err)), 0);
	assert_true(v == LLONG_MAX);
	v = 42;
	assert_int_equal(state_get_int(r, "m1", 0, INT_MAX, &v, err, sizeof(err)), -1);
	assert_string_equal(err, "ints: m1: bad value '-1'");
	assert_int_equal(state_get_int(r, "ten", 0, 9, &v, err, sizeof(err)), -1);
	assert_string_equal(err, "ints: ten: bad value '10'");
	assert_int_equal(state_get_int(r, "zero", 1, 5, &v, err, sizeof(err)), -1);
	assert_int_equal(state_get_int(r, "small", LLONG_MIN, 0, &v, err, sizeof(err)), 0);
	assert_true(v == LLONG_MIN);
	v = 42;
	static const char *const bad[] = {"over",  "under", "plus",  "empty",  "junk", "blank",
					  "nul",   "zeros", "mzero", "mzeros", "minus"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (state_get_int(r, bad[i], LLONG_MIN, LLONG_MAX, &v, err, sizeof(err)) != -1)
			fail_msg("int %s accepted as %lld", bad[i], v);
	assert_int_equal(v, 42); /* never written on failure */
	assert_int_equal(state_get_int(r, "absent", 0, 1, &v, err, sizeof(err)), -1);
	assert_string_equal(err, "ints: absent missing");
	state_free(&st);
}

static void test_get_str(void **state)
{
	(void)state;
	struct state st;
	char err[ERRLEN], buf[8];
	assert_int_equal(parse_body("+strs\n"
				    "seven 1234567\n"
				    "eight 12345678\n"
				    "nul a%00b\n"
				    "empty \n",
				    &st, err),
			 0);
	const struct state_rec *r = &st.rec[0];
	assert_int_equal(state_get_str(r, "seven", buf, sizeof(buf), err, sizeof(err)), 0);
	assert_string_equal(buf, "1234567");
	assert_int_equal(state_get_str(r, "empty", buf, sizeof(buf), err, sizeof(err)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(state_get_str(r, "eight", buf, sizeof(buf), err, sizeof(err)), -1);
	assert_string_equal(err, "strs: eight too long or holds a NUL byte");
	/* A NUL byte is never cut short silently... */
	assert_int_equal(state_get_str(r, "nul", buf, sizeof(buf), err, sizeof(err)), -1);
	assert_string_equal(err, "strs: nul too long or holds a NUL byte");
	/* ...though the raw field has it all. */
	assert_string_equal(state_get(r, "nul"), "a");
	assert_int_equal(r->f[2].len, 3);
	assert_memory_equal(r->f[2].val, "a\0b", 3);
	assert_int_equal(state_get_str(r, "absent", buf, sizeof(buf), err, sizeof(err)), -1);
	assert_string_equal(err, "strs: absent missing");
	assert_null(state_get(r, "absent"));
	state_free(&st);
}

/* Fields a reader does not know are there, and change nothing. */
static void test_unknown_fields_ignored(void **state)
{
	(void)state;
	struct state st;
	char err[ERRLEN], buf[32];
	uint64_t u = 0;
	long long v = 0;
	assert_int_equal(parse_body("+thing\n"
				    "from_a_newer_build %ff%00\n"
				    "name web\n"
				    "x.y.z 1\n"
				    "count 7\n"
				    "zz_future -5\n"
				    "fd 4\n"
				    "?newer_record\n"
				    "name other\n",
				    &st, err),
			 0);
	const struct state_rec *r = &st.rec[0];
	assert_int_equal(r->n, 6);
	assert_int_equal(state_get_str(r, "name", buf, sizeof(buf), err, sizeof(err)), 0);
	assert_string_equal(buf, "web");
	assert_int_equal(state_get_u64(r, "count", &u, err, sizeof(err)), 0);
	assert_int_equal(u, 7);
	assert_int_equal(state_get_int(r, "fd", 0, INT_MAX, &v, err, sizeof(err)), 0);
	assert_int_equal(v, 4);
	/* A record's fields are its own. */
	assert_string_equal(state_get(&st.rec[1], "name"), "other");
	assert_null(state_get(&st.rec[1], "count"));
	state_free(&st);
}

/* ---- hostile input ---- */

static void test_hostile_header(void **state)
{
	(void)state;
	static const char body[] = "+rec\nk v\n";
	size_t blen = sizeof(body) - 1, len;
	char *s;

	assert_refused("", 0, "no header line");
	assert_refused("baton-state", 11, "no header line");
	char nohead[200];
	memset(nohead, 'b', sizeof(nohead));
	nohead[150] = '\n'; /* a header line is shorter than that */
	assert_refused(nohead, sizeof(nohead), "no header line");

	/* Bad magic, with a body and a checksum that would be right. */
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "baton-stat 1 %zu %016" PRIx64 "\n%s", blen,
			 state_checksum(body, blen), body);
	assert_refused(buf, (size_t)n, "not a baton state (bad header)");
	n = snprintf(buf, sizeof(buf), "BATON-STATE 1 %zu %016" PRIx64 "\n%s", blen,
		     state_checksum(body, blen), body);
	assert_refused(buf, (size_t)n, "bad header");
	n = snprintf(buf, sizeof(buf), "baton-state 1 %zu\n%s", blen, body);
	assert_refused(buf, (size_t)n, "bad header");
	n = snprintf(buf, sizeof(buf), "baton-state 1 %zu %016" PRIx64 " extra\n%s", blen,
		     state_checksum(body, blen), body);
	assert_refused(buf, (size_t)n, "bad header");
	n = snprintf(buf, sizeof(buf), "baton-state one %zu %016" PRIx64 "\n%s", blen,
		     state_checksum(body, blen), body);
	assert_refused(buf, (size_t)n, "bad header");

	/* Only the exact form state_seal() writes: single spaces, plain decimal
	 * numbers, 16 lower-case hex digits. */
	static const char *const forms[] = {
		"baton-state  1 %zu %016" PRIx64 "\n",  "baton-state +1 %zu %016" PRIx64 "\n",
		"baton-state 01 %zu %016" PRIx64 "\n",  "baton-state 0x1 %zu %016" PRIx64 "\n",
		" baton-state 1 %zu %016" PRIx64 "\n",  "baton-state 1 +%zu %016" PRIx64 "\n",
		"baton-state 1 0%zu %016" PRIx64 "\n",  "baton-state 1 %zu  %016" PRIx64 "\n",
		"baton-state 1 %zu %016" PRIX64 "\n",   "baton-state 1 %zu 0%016" PRIx64 "\n",
		"baton-state 1 %zu %016" PRIx64 " \n",  "baton-state\t1 %zu %016" PRIx64 "\n",
		"baton-state 4294967297 %zu %016" PRIx64 "\n",
		"baton-state 1 99999999999999999999 %.0zu%016" PRIx64 "\n",
	};
	char hex[17];
	snprintf(hex, sizeof(hex), "%016" PRIx64, state_checksum(body, blen));
	assert_non_null(strpbrk(hex, "abcdef")); /* so the upper-case form differs */
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		n = snprintf(buf, sizeof(buf), forms[i], blen, state_checksum(body, blen));
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s", body);
		assert_refused(buf, (size_t)n, "not a baton state (bad header)");
	}

	/* Another version: refused whatever else is right. */
	s = make_state(2, body, blen, 0, 0, &len);
	assert_refused(s, len, "state version 2: this batond reads version 1 only");
	free(s);
	s = make_state(BATON_STATE_VERSION + 1, body, blen, 0, 0, &len);
	assert_refused(s, len, "this batond reads version");
	free(s);
	s = make_state(0, body, blen, 0, 0, &len);
	assert_refused(s, len, "state version 0");
	free(s);

	/* The body is not the length the header says. */
	s = make_state(BATON_STATE_VERSION, body, blen, 1, 0, &len);
	assert_refused(s, len, "state truncated or padded: body 9 bytes, header says 10");
	free(s);
	s = make_state(BATON_STATE_VERSION, body, blen, -1, 0, &len);
	assert_refused(s, len, "truncated or padded");
	free(s);
	s = make_state(BATON_STATE_VERSION, body, blen, 0, 0, &len);
	assert_refused(s, len - 1, "truncated or padded"); /* cut */
	free(s);

	/* Checksum: the header's, or a byte of the body, changed. */
	s = make_state(BATON_STATE_VERSION, body, blen, 0, 1, &len);
	assert_refused(s, len, "state checksum mismatch");
	free(s);
	s = make_state(BATON_STATE_VERSION, body, blen, 0, 0, &len);
	s[len - 2] = 'w';
	assert_refused(s, len, "state checksum mismatch");
	free(s);
}

static void test_hostile_body(void **state)
{
	(void)state;
	BODY_REFUSED("+rec\nk v", "state: last line not terminated");
	BODY_REFUSED("+rec", "last line not terminated");
	BODY_REFUSED("k v\n", "state line 1: a field before any record");
	BODY_REFUSED("\n", "state line 1: a field before any record");

	/* Record types: [a-z0-9_], 1 to 31 of them. */
	BODY_REFUSED("+\n", "state line 1: bad record type");
	BODY_REFUSED("?\n", "bad record type");
	BODY_REFUSED("+rec\n+Rec\n", "state line 2: bad record type");
	BODY_REFUSED("+a.b\n", "bad record type");
	BODY_REFUSED("+a-b\n", "bad record type");
	BODY_REFUSED("+a b\n", "bad record type");
	BODY_REFUSED("+rec \n", "bad record type");
	BODY_REFUSED("+abcdefghijklmnopqrstuvwxyz012345\n", "bad record type"); /* 32 */
	BODY_REFUSED("-rec\n", "a field before any record");

	/* Keys: [a-z0-9_.], 1 to 63 of them, then one space. */
	BODY_REFUSED("+rec\nK v\n", "state line 2: bad field");
	BODY_REFUSED("+rec\nk-x v\n", "bad field");
	BODY_REFUSED("+rec\nkv\n", "bad field");
	BODY_REFUSED("+rec\n v\n", "bad field");
	BODY_REFUSED("+rec\n\n", "bad field");
	BODY_REFUSED("+rec\nk\tv\n", "bad field");
	BODY_REFUSED("+rec\nk%41 v\n", "bad field");
	BODY_REFUSED("+rec\nabcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01 v\n",
		     "bad field"); /* 64 */

	/* Escapes: %XX with two hex digits. */
	BODY_REFUSED("+rec\nk %4\n", "state line 2: bad value of k");
	BODY_REFUSED("+rec\nk %zz\n", "bad value of k");
	BODY_REFUSED("+rec\nk %\n", "bad value of k");
	BODY_REFUSED("+rec\nk a%4\n", "bad value of k");
	BODY_REFUSED("+rec\nk %g0\n", "bad value of k");
	BODY_REFUSED("+rec\nk %0g\n", "bad value of k");
	BODY_REFUSED("+rec\nok 1\nk %%41\n", "state line 3: bad value of k");

	/* Raw bytes that must have been escaped: space, controls, DEL, high. */
	BODY_REFUSED("+rec\nk a b\n", "bad value of k");
	BODY_REFUSED("+rec\nk a\tb\n", "bad value of k");
	BODY_REFUSED("+rec\nk a\rb\n", "bad value of k");
	BODY_REFUSED("+rec\nk a\x01z\n", "bad value of k");
	BODY_REFUSED("+rec\nk a\x7fz\n", "bad value of k");
	BODY_REFUSED("+rec\nk a\x80z\n", "bad value of k");
	BODY_REFUSED("+rec\nk caf\xc3\xa9\n", "bad value of k");
	BODY_REFUSED("+rec\nk a\0b\n", "bad value of k");
	BODY_REFUSED("+rec\nk v \n", "bad value of k");
}

/* What is accepted at the edges of the syntax. */
static void test_edges_accepted(void **state)
{
	(void)state;
	struct state st;
	char err[ERRLEN];
	size_t len;

	char *s = make_state(BATON_STATE_VERSION, "", 0, 0, 0, &len);
	assert_int_equal(state_parse(s, len, &st, err, sizeof(err)), 0);
	assert_int_equal(st.nrec, 0);
	state_free(&st);
	free(s);

	assert_int_equal(parse_body("+abcdefghijklmnopqrstuvwxyz01234\n" /* 31 */
				    "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0 %4A%4a\n" /* 63 */
				    "?_\n"
				    "_ \n"
				    ". %ff\n",
				    &st, err),
			 0);
	assert_int_equal(st.nrec, 2);
	assert_int_equal(st.rec[0].n, 1);
	assert_string_equal(st.rec[0].f[0].val, "JJ");
	assert_int_equal(st.rec[1].required, 0);
	assert_int_equal(st.rec[1].f[1].len, 1);
	assert_int_equal((unsigned char)st.rec[1].f[1].val[0], 0xff);
	state_free(&st);

	/* Many records and fields: the arrays grow. */
	struct state_out o;
	state_out_init(&o);
	for (int i = 0; i < 300; i++) {
		state_record(&o, "r", i & 1);
		for (int j = 0; j < i % 40; j++)
			state_u64(&o, "n", (uint64_t)j);
	}
	parse_out(&o, &st);
	assert_int_equal(st.nrec, 300);
	assert_int_equal(st.rec[299].n, 299 % 40);
	assert_string_equal(st.rec[299].f[18].val, "18");
	assert_int_equal(st.rec[39].n, 39);
	state_free(&st);
	state_out_free(&o);

	/* A short err buffer is cut, never overrun. */
	char small[8];
	memset(small, 'X', sizeof(small));
	assert_int_equal(state_parse("x", 1, &st, small, sizeof(small)), -1);
	assert_string_equal(small, "not a b");
}

/* ---- a config section across the state ---- */

static void set_keys(int sec, void *base, const char *const *kv)
{
	char err[ERRLEN];
	for (; kv[0]; kv += 2)
		if (config_section_set(sec, base, kv[0], kv[1], err, sizeof(err)) != 0)
			fail_msg("%s = %s: %s", kv[0], kv[1], err);
}

static void assert_strv_equal(char **a, char **b)
{
	assert_non_null(a);
	assert_non_null(b);
	for (; *a && *b; a++, b++)
		assert_string_equal(*a, *b);
	assert_null(*a);
	assert_null(*b);
}

static void test_config_program_roundtrip(void **state)
{
	(void)state;
	static const char *const keys[] = {
		"command",	 "/usr/bin/env \"arg one\" 'x  y' 100% tail\\ esc",
		"workers",	 "4",
		"directory",	 "/srv/app dir",
		"environment",	 "A=1,B=\"x,y\",C_3=hello world,PCT=50%",
		"umask",	 "0027",
		"ready_timeout", "3s",
		"drain_timeout", "1m",
		"stop_timeout",	 "1500ms",
		"ack_timeout",	 "0",
		"stdout",	 "/var/log/app out.log",
		"stderr",	 "inherit",
		"stop_signal",	 "SIGINT",
		"restart",	 "on-failure",
		"backoff",	 "200ms",
		"backoff_max",	 "1h",
		"start_retries", "7",
		"capacity",	 "64",
		"upgrade_batch", "2",
		NULL,
	};
	struct cfg_program a, b;
	struct state_out o;
	struct state st;
	char err[ERRLEN];

	memset(&a, 0, sizeof(a));
	config_section_defaults(S_PROGRAM, &a);
	strcpy(a.name, "app");
	set_keys(S_PROGRAM, &a, keys);
	assert_int_equal(a.workers, 4);
	assert_int_equal(a.stop_signal, SIGINT);

	state_out_init(&o);
	state_record(&o, "program", 1);
	state_str(&o, "name", a.name);
	config_save_section(&o, S_PROGRAM, &a);
	state_i64(&o, "generation", 3);
	seal_and_read(&o, &st);
	state_out_free(&o);
	assert_int_equal(st.nrec, 1);
	const struct state_rec *r = &st.rec[0];
	assert_string_equal(r->type, "program");
	/* Every key of the section is saved, as the INI file takes it. */
	assert_string_equal(state_get(r, "cfg.command"), a.command);
	assert_string_equal(state_get(r, "cfg.workers"), "4");
	assert_string_equal(state_get(r, "cfg.umask"), "027");
	assert_string_equal(state_get(r, "cfg.ready_timeout"), "3000ms");
	assert_string_equal(state_get(r, "cfg.stop_signal"), "INT");
	assert_string_equal(state_get(r, "cfg.restart"), "on-failure");
	assert_string_equal(state_get(r, "cfg.user"), "");
	for (size_t i = 0; i < config_nkeys; i++) {
		char key[80];
		snprintf(key, sizeof(key), "cfg.%s", config_keys[i].name);
		if (config_keys[i].sec == S_PROGRAM)
			assert_non_null(state_get(r, key));
	}

	memset(&b, 0, sizeof(b));
	assert_int_equal(state_get_str(r, "name", b.name, sizeof(b.name), err, sizeof(err)), 0);
	if (config_restore_section(r, S_PROGRAM, &b, err, sizeof(err)) != 0)
		fail_msg("config_restore_section: %s", err);
	assert_string_equal(b.name, "app");
	assert_int_equal(config_diff_program(&a, &b), 0);
	assert_strv_equal(a.argv, b.argv);
	assert_strv_equal(a.env, b.env);
	assert_string_equal(b.argv[1], "arg one");
	assert_string_equal(b.argv[3], "100%");
	assert_string_equal(b.env[3], "PCT=50%");
	assert_int_equal(b.workers, 4);
	assert_int_equal(b.umask, 027);
	assert_true(b.ack_timeout == 0);
	assert_true(b.backoff_max == 3600000);
	assert_int_equal(b.restart, RESTART_ON_FAILURE);
	assert_string_equal(b.stdout_to, "/var/log/app out.log");
	state_free(&st);
	config_free_strv(a.argv);
	config_free_strv(a.env);
	config_free_strv(b.argv);
	config_free_strv(b.env);
}

static void test_config_other_sections_roundtrip(void **state)
{
	(void)state;
	static const char *const lkeys[] = {
		"address", "unix:/run/app sock", "program", "app", "backlog", "100",
		"mode", "0640", "owner", "root:root", NULL,
	};
	static const char *const tkeys[] = {
		"address", "tcp:[::1]:8080", "program", "app", "tcp_nodelay", "no",
		"tcp_keepalive", "yes", "tcp_keepidle", "30s", "tcp_keepcnt", "4",
		"tcp_user_timeout", "2m", "tcp_defer_accept", "1500ms", NULL,
	};
	static const char *const bkeys[] = {
		"control", "/run/baton/ctl.sock", "control_mode", "0660", "control_group", "adm",
		"control_group_write", "yes", "log_level", "debug", "log_file", "/var/log/b d.log",
		"http", "tcp:127.0.0.1:9180", NULL,
	};
	const char *const *lists[] = {lkeys, tkeys};
	struct state_out o;
	struct state st;
	char err[ERRLEN];

	for (int i = 0; i < 2; i++) {
		struct cfg_listener a, b;
		memset(&a, 0, sizeof(a));
		config_section_defaults(S_LISTENER, &a);
		strcpy(a.name, "web");
		set_keys(S_LISTENER, &a, lists[i]);
		state_out_init(&o);
		state_record(&o, "listener", 1);
		state_str(&o, "name", a.name);
		config_save_section(&o, S_LISTENER, &a);
		seal_and_read(&o, &st);
		state_out_free(&o);
		memset(&b, 0, sizeof(b));
		assert_int_equal(state_get_str(&st.rec[0], "name", b.name, sizeof(b.name), err,
					       sizeof(err)),
				 0);
		if (config_restore_section(&st.rec[0], S_LISTENER, &b, err, sizeof(err)) != 0)
			fail_msg("config_restore_section: %s", err);
		assert_int_equal(config_diff_listener(&a, &b), 0);
		assert_int_equal(b.addr.kind, a.addr.kind);
		assert_int_equal(b.addr.len, a.addr.len);
		assert_memory_equal(&b.addr.ss, &a.addr.ss, a.addr.len);
		state_free(&st);
	}

	struct cfg_baton a, b;
	memset(&a, 0, sizeof(a));
	config_section_defaults(S_BATON, &a);
	set_keys(S_BATON, &a, bkeys);
	state_out_init(&o);
	state_record(&o, "baton", 1);
	config_save_section(&o, S_BATON, &a);
	seal_and_read(&o, &st);
	state_out_free(&o);
	memset(&b, 0, sizeof(b));
	if (config_restore_section(&st.rec[0], S_BATON, &b, err, sizeof(err)) != 0)
		fail_msg("config_restore_section: %s", err);
	assert_int_equal(config_check_restart(&a, &b, err, sizeof(err)), 0);
	assert_int_equal(b.control_mode, 0660);
	assert_string_equal(b.control_group, "adm");
	assert_int_equal(b.control_group_write, 1);
	assert_int_equal(b.log_level, LOGL_DEBUG);
	assert_string_equal(b.log_file, "/var/log/b d.log");
	assert_int_equal(b.http_addr.kind, ADDR_TCP);
	assert_memory_equal(&b.http_addr.ss, &a.http_addr.ss, a.http_addr.len);
	state_free(&st);
}

static void test_config_restore_rules(void **state)
{
	(void)state;
	struct state st;
	struct cfg_program p;
	char err[ERRLEN];

	/* Defaults for what is missing; unknown cfg keys and other fields ignored. */
	assert_int_equal(parse_body("+program\n"
				    "name app\n"
				    "cfg.command /bin/true\n"
				    "cfg.from_the_future 1\n"
				    "generation 2\n",
				    &st, err),
			 0);
	memset(&p, 0, sizeof(p));
	assert_int_equal(config_restore_section(&st.rec[0], S_PROGRAM, &p, err, sizeof(err)), 0);
	assert_string_equal(p.argv[0], "/bin/true");
	assert_null(p.argv[1]);
	assert_int_equal(p.workers, 1);
	assert_int_equal(p.capacity, 1024);
	assert_string_equal(p.stdout_to, "log");
	assert_string_equal(p.name, ""); /* the name is the record's, not a cfg key */
	config_free_strv(p.argv);
	config_free_strv(p.env);
	state_free(&st);

	/* A bad value is an error naming the record and the key. */
	static const struct {
		const char *body, *want;
	} bad[] = {
		{"+program\ncfg.workers 5000\n", "program: cfg.workers: '5000' is not a whole number"},
		{"+program\ncfg.command 'open\n", "program: cfg.command: "},
		{"+program\ncfg.restart sometimes\n", "program: cfg.restart: 'sometimes' is not"},
		{"+program\ncfg.ready_timeout 0ms\n", "program: cfg.ready_timeout: '0ms' is not a duration"},
		{"+program\ncfg.command /bin/sh%00-c\n", "program: cfg.command: NUL byte"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_body(bad[i].body, &st, err), 0);
		memset(&p, 0, sizeof(p));
		assert_int_equal(config_restore_section(&st.rec[0], S_PROGRAM, &p, err, sizeof(err)), -1);
		assert_contains(err, bad[i].want);
		config_free_strv(p.argv);
		config_free_strv(p.env);
		state_free(&st);
	}

	/* A key with no default must be there: no program without a command,
	 * no listener without an address or a program. */
	assert_int_equal(parse_body("+program\ncfg.workers 2\n", &st, err), 0);
	memset(&p, 0, sizeof(p));
	assert_int_equal(config_restore_section(&st.rec[0], S_PROGRAM, &p, err, sizeof(err)), -1);
	assert_string_equal(err, "program: cfg.command missing (the key has no default)");
	config_free_strv(p.argv);
	config_free_strv(p.env);
	state_free(&st);
	static const struct {
		const char *body, *want;
	} lbad[] = {
		{"+listener\ncfg.program app\n", "listener: cfg.address missing"},
		{"+listener\ncfg.address tcp:127.0.0.1:80\n", "listener: cfg.program missing"},
	};
	for (size_t i = 0; i < sizeof(lbad) / sizeof(lbad[0]); i++) {
		struct cfg_listener l;
		assert_int_equal(parse_body(lbad[i].body, &st, err), 0);
		memset(&l, 0, sizeof(l));
		assert_int_equal(config_restore_section(&st.rec[0], S_LISTENER, &l, err, sizeof(err)), -1);
		assert_contains(err, lbad[i].want);
		state_free(&st);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_escapes),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_seal_memfd),
		cmocka_unit_test(test_seal_refused),
		cmocka_unit_test(test_read_fd_refused),
		cmocka_unit_test(test_get_u64),
		cmocka_unit_test(test_get_int),
		cmocka_unit_test(test_get_str),
		cmocka_unit_test(test_unknown_fields_ignored),
		cmocka_unit_test(test_hostile_header),
		cmocka_unit_test(test_hostile_body),
		cmocka_unit_test(test_edges_accepted),
		cmocka_unit_test(test_config_program_roundtrip),
		cmocka_unit_test(test_config_other_sections_roundtrip),
		cmocka_unit_test(test_config_restore_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
