/*
 * The small shared helpers (common/util.c, common/log.c): duration, integer,
 * boolean and mode parsing, listener addresses, fd flags and fds 0-2, log
 * level names.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "util.h"


#define DAY_MS (86400000ULL)
#define CAP_MS (30 * DAY_MS)

/* --- durations -------------------------------------------------------- */

#define DUR_OK(s, want)                                                        \
	do {                                                                   \
		uint64_t ms_ = 12345;                                          \
		int rc_ = util_parse_duration((s), &ms_);                      \
		if (rc_ != 0 || ms_ != (uint64_t)(want))                       \
			print_error("util_parse_duration(\"%s\"): rc %d ms %llu, " \
				    "want 0 and %llu\n", (s), rc_,              \
				    (unsigned long long)ms_,                   \
				    (unsigned long long)(want));               \
		assert_int_equal(rc_, 0);                                      \
		assert_true(ms_ == (uint64_t)(want));                          \
	} while (0)

#define DUR_BAD(s)                                                             \
	do {                                                                   \
		uint64_t ms_ = 12345;                                          \
		int rc_ = util_parse_duration((s), &ms_);                      \
		if (rc_ != -1)                                                 \
			print_error("util_parse_duration(\"%s\") accepted: %llu\n", \
				    (s), (unsigned long long)ms_);             \
		assert_int_equal(rc_, -1);                                     \
	} while (0)

static void test_duration_ok(void **state)
{
	(void)state;
	DUR_OK("500ms", 500);
	DUR_OK("10s", 10000);
	DUR_OK("2m", 120000);
	DUR_OK("1h", 3600000);
	DUR_OK("0", 0);
	DUR_OK("0ms", 0);
	DUR_OK("0s", 0);
	DUR_OK("0h", 0);
	DUR_OK("1ms", 1);
	DUR_OK("1500ms", 1500);
	DUR_OK("90s", 90000);
	DUR_OK("007s", 7000);
	/* The 30 day cap, exactly, in every unit. */
	DUR_OK("2592000000ms", CAP_MS);
	DUR_OK("2592000s", CAP_MS);
	DUR_OK("43200m", CAP_MS);
	DUR_OK("720h", CAP_MS);
}

static void test_duration_bad(void **state)
{
	(void)state;
	DUR_BAD("");
	DUR_BAD("10");
	DUR_BAD("1");
	DUR_BAD("-1s");
	DUR_BAD("-0s");
	DUR_BAD("+1s");
	DUR_BAD("1.5s");
	DUR_BAD("10 s");
	DUR_BAD(" 10s");
	DUR_BAD("10s ");
	DUR_BAD("s");
	DUR_BAD("ms");
	DUR_BAD("10x");
	DUR_BAD("10d");
	DUR_BAD("10sec");
	DUR_BAD("10mss");
	DUR_BAD("10s5");
	DUR_BAD("1h30m");
	DUR_BAD("0x10s");
	DUR_BAD("99999999999999999999s");
	DUR_BAD("18446744073709551615ms");
	DUR_BAD("18446744073709551616ms");
	/* One over the 30 day cap, in every unit. */
	DUR_BAD("2592000001ms");
	DUR_BAD("2592001s");
	DUR_BAD("43201m");
	DUR_BAD("721h");
	DUR_BAD("100000h");
}

static void test_duration_format(void **state)
{
	(void)state;
	static const struct {
		uint64_t ms;
		const char *text;
	} cases[] = {
		{0, "0"},          {1, "1ms"},        {500, "500ms"},
		{999, "999ms"},    {1000, "1s"},      {1500, "1500ms"},
		{10000, "10s"},    {59000, "59s"},    {60000, "1m"},
		{90000, "90s"},    {120000, "2m"},    {3599999, "3599999ms"},
		{3600000, "1h"},   {5400000, "90m"},  {7200000, "2h"},
		{DAY_MS, "24h"},   {CAP_MS, "720h"},  {CAP_MS - 1, "2591999999ms"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[32];
		uint64_t back = 424242;
		util_format_duration(cases[i].ms, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].text);
		assert_int_equal(util_parse_duration(buf, &back), 0);
		assert_true(back == cases[i].ms);
	}
	/* Every value in a sweep round-trips. */
	for (uint64_t ms = 0; ms < 200000; ms += 250) {
		char buf[32];
		uint64_t back = 424242;
		util_format_duration(ms, buf, sizeof(buf));
		assert_int_equal(util_parse_duration(buf, &back), 0);
		assert_true(back == ms);
	}
	/* Truncated to the buffer, still terminated. */
	char *small = malloc(3);
	assert_non_null(small);
	util_format_duration(500, small, 3);
	assert_string_equal(small, "50");
	util_format_duration(500, small, 1);
	assert_string_equal(small, "");
	free(small);
}

/* --- integers, booleans, modes ---------------------------------------- */

static void test_parse_int(void **state)
{
	(void)state;
	long long v;

	v = -99;
	assert_int_equal(util_parse_int("0", 0, 10, &v), 0);
	assert_true(v == 0);
	assert_int_equal(util_parse_int("10", 0, 10, &v), 0);
	assert_true(v == 10);
	assert_int_equal(util_parse_int("7", 7, 7, &v), 0);
	assert_true(v == 7);
	assert_int_equal(util_parse_int("-5", -10, 10, &v), 0);
	assert_true(v == -5);
	assert_int_equal(util_parse_int("-10", -10, 10, &v), 0);
	assert_true(v == -10);
	assert_int_equal(util_parse_int("0010", 0, 100, &v), 0);
	assert_true(v == 10); /* decimal, not octal */
	assert_int_equal(util_parse_int("9223372036854775807", 0, LLONG_MAX, &v), 0);
	assert_true(v == LLONG_MAX);
	assert_int_equal(util_parse_int("-9223372036854775808", LLONG_MIN, 0, &v), 0);
	assert_true(v == LLONG_MIN);

	/* Bounds. */
	assert_int_equal(util_parse_int("11", 0, 10, &v), -1);
	assert_int_equal(util_parse_int("-1", 0, 10, &v), -1);
	assert_int_equal(util_parse_int("6", 7, 7, &v), -1);
	assert_int_equal(util_parse_int("8", 7, 7, &v), -1);
	assert_int_equal(util_parse_int("-11", -10, 10, &v), -1);
	assert_int_equal(util_parse_int("9223372036854775807", 0, LLONG_MAX - 1, &v), -1);
	/* Overflow. */
	assert_int_equal(util_parse_int("9223372036854775808", LLONG_MIN, LLONG_MAX, &v), -1);
	assert_int_equal(util_parse_int("-9223372036854775809", LLONG_MIN, LLONG_MAX, &v), -1);
	assert_int_equal(util_parse_int("99999999999999999999999", LLONG_MIN, LLONG_MAX, &v), -1);

	/* Junk. */
	const char *junk[] = {"",    "abc", "12abc", " 12", "12 ", "+12", "1e3",
			      "0x10", "1.0", "-",    "--1", "- 1", "1 2", "\t1",
			      "1\n",  "١"};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		v = -99;
		if (util_parse_int(junk[i], LLONG_MIN, LLONG_MAX, &v) != -1)
			print_error("util_parse_int(\"%s\") accepted: %lld\n", junk[i], v);
		assert_int_equal(util_parse_int(junk[i], LLONG_MIN, LLONG_MAX, &v), -1);
	}
}

static void test_parse_bool(void **state)
{
	(void)state;
	const char *yes[] = {"yes", "true", "on", "1", "YES", "True", "oN", "TRUE"};
	const char *no[] = {"no", "false", "off", "0", "NO", "False", "OFF", "oFf"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		int b = -1;
		assert_int_equal(util_parse_bool(yes[i], &b), 0);
		assert_int_equal(b, 1);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		int b = -1;
		assert_int_equal(util_parse_bool(no[i], &b), 0);
		assert_int_equal(b, 0);
	}
	const char *junk[] = {"",   "y",     "n",    "2",     "-1",      "yess",
			      "ye", " yes",  "yes ", "enable", "disabled", "10",
			      "01", "truee", "of",   "onn",   "nope",    "true\n"};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		int b = -1;
		if (util_parse_bool(junk[i], &b) != -1)
			print_error("util_parse_bool(\"%s\") accepted\n", junk[i]);
		assert_int_equal(util_parse_bool(junk[i], &b), -1);
	}
}

static void test_parse_mode(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		unsigned mode;
	} ok[] = {
		{"0600", 0600}, {"755", 0755}, {"0", 0},       {"0000", 0},
		{"0660", 0660}, {"777", 0777}, {"4755", 04755}, {"07777", 07777},
		{"7777", 07777}, {"00600", 0600},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		unsigned m = 12345;
		assert_int_equal(util_parse_mode(ok[i].s, &m), 0);
		assert_int_equal(m, ok[i].mode);
	}
	const char *bad[] = {"0800", "abc", "", "17777", "10000", "8", "9",
			     "-1",   "+600", " 600", "600 ", "0x1ff", "06a0", "0o600",
			     "7777777777777777777777777"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned m = 12345;
		if (util_parse_mode(bad[i], &m) != -1)
			print_error("util_parse_mode(\"%s\") accepted: %o\n", bad[i], m);
		assert_int_equal(util_parse_mode(bad[i], &m), -1);
	}
}

/* --- addresses -------------------------------------------------------- */

static void parse_ok(const char *s, struct addr *a)
{
	char err[256] = "";
	int rc = addr_parse(s, a, err, sizeof(err));
	if (rc != 0)
		print_error("addr_parse(\"%s\") failed: %s\n", s, err);
	assert_int_equal(rc, 0);
}

static void check_v4(const char *s, const uint8_t want[4], uint16_t port)
{
	struct addr a;
	parse_ok(s, &a);
	const struct sockaddr_in *in = (const struct sockaddr_in *)&a.ss;
	assert_int_equal(a.kind, ADDR_TCP);
	assert_int_equal(in->sin_family, AF_INET);
	assert_int_equal(a.len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(in->sin_port), port);
	assert_memory_equal(&in->sin_addr, want, 4);
}

static void check_v6(const char *s, const char *want_text, uint16_t port)
{
	struct addr a;
	struct in6_addr want;
	parse_ok(s, &a);
	assert_int_equal(inet_pton(AF_INET6, want_text, &want), 1);
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a.ss;
	assert_int_equal(a.kind, ADDR_TCP);
	assert_int_equal(in6->sin6_family, AF_INET6);
	assert_int_equal(a.len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(in6->sin6_port), port);
	assert_memory_equal(&in6->sin6_addr, &want, sizeof(want));
	assert_int_equal(in6->sin6_flowinfo, 0);
	assert_int_equal(in6->sin6_scope_id, 0);
}

static void check_unix(const char *s, const char *path)
{
	struct addr a;
	parse_ok(s, &a);
	const struct sockaddr_un *un = (const struct sockaddr_un *)&a.ss;
	assert_int_equal(a.kind, ADDR_UNIX);
	assert_int_equal(un->sun_family, AF_UNIX);
	assert_string_equal(un->sun_path, path);
	/* Long enough for the path and its NUL, no longer than the struct. */
	assert_true(a.len >= offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
	assert_true(a.len <= sizeof(struct sockaddr_un));
}

static void test_addr_parse_ok(void **state)
{
	(void)state;
	static const uint8_t lo[4] = {127, 0, 0, 1}, any[4] = {0, 0, 0, 0},
			     v1234[4] = {1, 2, 3, 4},
			     bcast[4] = {255, 255, 255, 255};
	check_v4("tcp:127.0.0.1:8080", lo, 8080);
	check_v4("tcp:*:0", any, 0);
	check_v4("tcp:localhost:1", lo, 1);
	check_v4("tcp:1.2.3.4:65535", v1234, 65535);
	check_v4("tcp:0.0.0.0:80", any, 80);
	check_v4("tcp:255.255.255.255:443", bcast, 443);
	check_v4("tcp:1.2.3.4:0080", v1234, 80); /* decimal port */

	check_v6("tcp:[::1]:8080", "::1", 8080);
	check_v6("[::1]:80", "::1", 80);
	check_v6("[::]:0", "::", 0);
	check_v6("tcp:[2001:db8::42]:65535", "2001:db8::42", 65535);
	check_v6("[::ffff:1.2.3.4]:1", "::ffff:1.2.3.4", 1);
	check_v6("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:9",
		 "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 9);

	check_unix("unix:/tmp/x.sock", "/tmp/x.sock");
	check_unix("unix:/", "/");
	/* The longest path that fits sun_path with its NUL. */
	char s[5 + sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	memcpy(s, "unix:/", 6);
	memset(s + 6, 'p', max - 1);
	s[5 + max] = '\0';
	check_unix(s, s + 5);
}

static void parse_bad(const char *s)
{
	struct addr a;
	char err[256];
	memset(err, 0, sizeof(err));
	int rc = addr_parse(s, &a, err, sizeof(err));
	if (rc != -1)
		print_error("addr_parse(\"%s\") accepted\n", s);
	assert_int_equal(rc, -1);
	if (err[0] == '\0')
		print_error("addr_parse(\"%s\"): empty error text\n", s);
	assert_true(err[0] != '\0');
	assert_non_null(memchr(err, '\0', sizeof(err)));
}

static void test_addr_parse_bad(void **state)
{
	(void)state;
	parse_bad("tcp:127.0.0.1");
	parse_bad("tcp:1.2.3.4:65536");
	parse_bad("tcp:1.2.3.4:-1");
	parse_bad("tcp:1.2.3.4:-0");
	parse_bad("tcp:1.2.3.4:+80");
	parse_bad("tcp:1.2.3.4:http");
	parse_bad("tcp:1.2.3.4:");
	parse_bad("tcp:1.2.3.4: 80");
	parse_bad("tcp:1.2.3.4:80 ");
	parse_bad("tcp:1.2.3.4:0x50");
	parse_bad("tcp:1.2.3.4:99999999999999999999");
	parse_bad("tcp:300.1.1.1:80");
	parse_bad("tcp:1.2.3:80");
	parse_bad("tcp::80");
	parse_bad("tcp:host.example:80");
	parse_bad("tcp:::1:80"); /* IPv6 without brackets */
	parse_bad("tcp:1.2.3.4:5:6");
	parse_bad("tcp:[::1:80");
	parse_bad("tcp:[zz]:80");
	parse_bad("tcp:[]:80");
	parse_bad("tcp:[::1]80");
	parse_bad("tcp:[::1]:");
	parse_bad("tcp:[::1]:65536");
	parse_bad("tcp:[1.2.3.4]:80");
	parse_bad("[::1]");
	parse_bad("tcp:");
	parse_bad("unix:relative");
	parse_bad("unix:");
	parse_bad("udp:1.2.3.4:5");
	parse_bad("");
	parse_bad("8080");
	parse_bad(":8080");
	parse_bad("1.2.3.4:80");

	/* Paths too long for sun_path: 200 bytes, and one byte over. */
	char s[512];
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	memcpy(s, "unix:/", 6);
	memset(s + 6, 'a', 199);
	s[5 + 200] = '\0';
	parse_bad(s);
	memset(s + 6, 'b', max);
	s[5 + max + 1] = '\0';
	parse_bad(s);

	/* Hosts too long for any buffer. */
	memcpy(s, "tcp:", 4);
	memset(s + 4, '1', 300);
	strcpy(s + 304, ":80");
	parse_bad(s);
	memcpy(s, "tcp:[", 5);
	memset(s + 5, 'f', 300);
	strcpy(s + 305, "]:80");
	parse_bad(s);
}

/* The error text is cut to errlen, never written past it. */
static void test_addr_parse_small_err(void **state)
{
	(void)state;
	struct addr a;
	char *err = malloc(8);
	assert_non_null(err);
	assert_int_equal(addr_parse("udp:1.2.3.4:5", &a, err, 8), -1);
	assert_int_equal(strlen(err), 7);
	assert_int_equal(addr_parse("tcp:1.2.3.4:http", &a, err, 1), -1);
	assert_string_equal(err, "");
	free(err);
}

static void fmt(const struct sockaddr *sa, socklen_t len, const char *want)
{
	char buf[256];
	memset(buf, 'X', sizeof(buf));
	addr_format(sa, len, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_addr_format(void **state)
{
	(void)state;
	struct sockaddr_in in;
	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	in.sin_port = htons(8080);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fmt((struct sockaddr *)&in, sizeof(in), "127.0.0.1:8080");
	in.sin_port = htons(65535);
	in.sin_addr.s_addr = htonl(0x01020304);
	fmt((struct sockaddr *)&in, sizeof(in), "1.2.3.4:65535");
	/* Formatted by hand: every digit count, both ends of each field. */
	static const struct {
		uint32_t a;
		uint16_t port;
		const char *want;
	} v4[] = {
		{0x00000000, 0, "0.0.0.0:0"},
		{0xffffffff, 65535, "255.255.255.255:65535"},
		{0x0a090063, 10, "10.9.0.99:10"},
		{0x64c80a01, 100, "100.200.10.1:100"},
		{0x7f000002, 9999, "127.0.0.2:9999"},
	};
	for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
		char want[32];
		in.sin_addr.s_addr = htonl(v4[i].a);
		in.sin_port = htons(v4[i].port);
		fmt((struct sockaddr *)&in, sizeof(in), v4[i].want);
		/* the same as inet_ntop and printf would give */
		char host[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &in.sin_addr, host, sizeof(host));
		snprintf(want, sizeof(want), "%s:%u", host, v4[i].port);
		fmt((struct sockaddr *)&in, sizeof(in), want);
	}
	in.sin_port = htons(8080);

	struct sockaddr_in6 in6;
	memset(&in6, 0, sizeof(in6));
	in6.sin6_family = AF_INET6;
	in6.sin6_port = htons(80);
	in6.sin6_addr = in6addr_loopback;
	fmt((struct sockaddr *)&in6, sizeof(in6), "[::1]:80");
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::42", &in6.sin6_addr), 1);
	in6.sin6_port = htons(0);
	fmt((struct sockaddr *)&in6, sizeof(in6), "[2001:db8::42]:0");

	struct sockaddr_un un;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	strcpy(un.sun_path, "/tmp/x.sock");
	socklen_t plen = offsetof(struct sockaddr_un, sun_path) + strlen(un.sun_path);
	fmt((struct sockaddr *)&un, plen + 1, "unix:/tmp/x.sock"); /* with NUL */
	fmt((struct sockaddr *)&un, plen, "unix:/tmp/x.sock");     /* without */
	fmt((struct sockaddr *)&un, sizeof(un), "unix:/tmp/x.sock");
	/* A path filling sun_path with no NUL (len bounds the read). */
	memset(un.sun_path, 'p', sizeof(un.sun_path));
	char want[8 + sizeof(un.sun_path)];
	memcpy(want, "unix:", 5);
	memset(want + 5, 'p', sizeof(un.sun_path));
	want[5 + sizeof(un.sun_path)] = '\0';
	fmt((struct sockaddr *)&un, sizeof(un), want);

	/* Unnamed (socketpair, accepted client): just the family. */
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	fmt((struct sockaddr *)&un, sizeof(sa_family_t), "unix");
	fmt((struct sockaddr *)&un, sizeof(un), "unix");

	/* What accept() gives for a real unnamed peer. */
	int sv[2];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(getpeername(sv[0], (struct sockaddr *)&ss, &sl), 0);
	fmt((struct sockaddr *)&ss, sl, "unix");
	close(sv[0]);
	close(sv[1]);

	struct sockaddr_storage other;
	memset(&other, 0, sizeof(other));
	other.ss_family = AF_PACKET;
	fmt((struct sockaddr *)&other, sizeof(other), "unknown");

	/* Truncated to the buffer. */
	char *small = malloc(5);
	assert_non_null(small);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr_format((struct sockaddr *)&in, sizeof(in), small, 5);
	assert_string_equal(small, "127.");
	addr_format((struct sockaddr *)&in, sizeof(in), small, 1);
	assert_string_equal(small, "");
	memset(small, 'X', 5);
	addr_format((struct sockaddr *)&in, sizeof(in), small, 0); /* writes nothing */
	assert_memory_equal(small, "XXXXX", 5);
	in6.sin6_port = htons(443);
	addr_format((struct sockaddr *)&in6, sizeof(in6), small, 5);
	assert_string_equal(small, "[200");
	free(small);
}

static void test_addr_roundtrip(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"tcp:127.0.0.1:8080", "127.0.0.1:8080"},
		{"tcp:*:0", "0.0.0.0:0"},
		{"tcp:localhost:1", "127.0.0.1:1"},
		{"tcp:[::1]:8080", "[::1]:8080"},
		{"[::1]:80", "[::1]:80"},
		{"[2001:db8:0:0:0:0:0:1]:443", "[2001:db8::1]:443"},
		{"unix:/tmp/x.sock", "unix:/tmp/x.sock"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct addr a;
		char buf[256];
		parse_ok(cases[i].in, &a);
		addr_format((struct sockaddr *)&a.ss, a.len, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].out);
	}
}

/* The parsed address can really be bound (and is what getsockname says). */
static void test_addr_bind(void **state)
{
	(void)state;
	struct addr a;
	parse_ok("tcp:127.0.0.1:0", &a);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a.ss, a.len), 0);
	close(s);

	char dir[] = "/tmp/baton-test-util-XXXXXX", spec[128];
	assert_non_null(mkdtemp(dir));
	snprintf(spec, sizeof(spec), "unix:%s/s.sock", dir);
	parse_ok(spec, &a);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a.ss, a.len), 0);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char buf[256];
	assert_int_equal(getsockname(s, (struct sockaddr *)&ss, &sl), 0);
	addr_format((struct sockaddr *)&ss, sl, buf, sizeof(buf));
	assert_string_equal(buf, spec);
	close(s);
	unlink(spec + 5);
	rmdir(dir);
}

/* --- fds and clock ---------------------------------------------------- */

static void test_fd_flags(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_false(fcntl(p[0], F_GETFL) & O_NONBLOCK);
	assert_false(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
	assert_int_equal(fd_set_nonblock(p[0]), 0);
	assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
	assert_int_equal(fd_set_cloexec(p[0]), 0);
	assert_true(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
	/* Idempotent. */
	assert_int_equal(fd_set_nonblock(p[0]), 0);
	assert_int_equal(fd_set_cloexec(p[0]), 0);
	close(p[0]);
	close(p[1]);
	assert_int_equal(fd_set_nonblock(p[0]), -1);
	assert_int_equal(fd_set_cloexec(p[0]), -1);
}

static int is_devnull(int fd)
{
	struct stat st, null;
	return fstat(fd, &st) == 0 && stat("/dev/null", &null) == 0 && S_ISCHR(st.st_mode) &&
	       st.st_rdev == null.st_rdev;
}

/* In a child (its fds 0-2 are at stake): close those in mask, call
 * fd_open_std(); 0 if every one is then open, the closed ones on
 * /dev/null (read and write), the others untouched, and a new fd lands
 * above 2; otherwise the number of the first check that failed. */
static int std_fds_child(int mask)
{
	struct stat before[3], st;
	for (int fd = 0; fd <= 2; fd++)
		if (fstat(fd, &before[fd]) < 0)
			return 1;
	for (int fd = 0; fd <= 2; fd++)
		if (mask & (1 << fd))
			close(fd);
	if (fd_open_std() < 0)
		return 2;
	for (int fd = 0; fd <= 2; fd++) {
		if (mask & (1 << fd)) {
			if (!is_devnull(fd) || (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR)
				return 3;
			if (fcntl(fd, F_GETFD) & FD_CLOEXEC)
				return 4;
		} else if (fstat(fd, &st) < 0 || st.st_ino != before[fd].st_ino ||
			   st.st_dev != before[fd].st_dev) {
			return 5;
		}
	}
	int fd = open("/dev/null", O_RDONLY);
	return fd > 2 ? 0 : 6;
}

static void test_fd_open_std(void **state)
{
	(void)state;
	/* none closed, each one alone, 0 and 2, all three */
	static const int masks[] = {0, 1, 2, 4, 5, 7};
	for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(std_fds_child(masks[i]));
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("closed mask %d: check %d failed", masks[i], WEXITSTATUS(status));
	}
}

static int fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void test_fd_close_all(void **state)
{
	(void)state;
	int null = open("/dev/null", O_RDONLY);
	assert_true(null >= 0);
	/* Eight fds with numbers of our choosing: base .. base+7. */
	int base = 300;
	for (int k = 0; k < 8; k++) {
		assert_false(fd_open(base + k));
		assert_int_equal(dup2(null, base + k), base + k);
	}
	/* Runs 0-1 and 3-5 and a lone 7, out of order: 2 and 6 are not ours
	 * and must stay open though they sit between. */
	int fds[] = {base + 5, base, base + 7, base + 3, base + 1, base + 4};
	fd_close_all(fds, 6);
	int want[] = {base, base + 1, base + 3, base + 4, base + 5, base + 7};
	assert_memory_equal(fds, want, sizeof(want)); /* sorted in place */
	for (int k = 0; k < 8; k++) {
		if (k == 2 || k == 6)
			assert_true(fd_open(base + k));
		else
			assert_false(fd_open(base + k));
	}
	fd_close_all(fds, 0); /* nothing */
	int two[] = {base + 6, base + 2};
	fd_close_all(two, 2);
	assert_false(fd_open(base + 2));
	assert_false(fd_open(base + 6));
	close(null);
}

static void test_log_limit(void **state)
{
	(void)state;
	struct log_limit l = {.burst = 3, .window_ms = 1000};
	unsigned left;
	/* three lines in a window, then counted */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(log_limit_take(&l, 5000 + i, &left), 1);
		assert_int_equal(left, 0);
	}
	for (int i = 0; i < 5; i++) {
		assert_int_equal(log_limit_take(&l, 5500 + i, &left), 0);
		assert_int_equal(left, 0); /* same window: nothing to say yet */
	}
	/* the next window: the five left out are said with its first line */
	assert_int_equal(log_limit_take(&l, 6000, &left), 1);
	assert_int_equal(left, 5);
	assert_int_equal(log_limit_take(&l, 6001, &left), 1);
	assert_int_equal(left, 0);
	/* a window with nothing left out says nothing after it */
	assert_int_equal(log_limit_take(&l, 9000, &left), 1);
	assert_int_equal(left, 0);
	/* a clock that starts at 0 still opens a window */
	struct log_limit z = {.burst = 1, .window_ms = 10};
	assert_int_equal(log_limit_take(&z, 0, &left), 1);
	assert_int_equal(log_limit_take(&z, 1, &left), 0);
	assert_int_equal(log_limit_take(&z, 11, &left), 1);
	assert_int_equal(left, 1);
}

/* What a window left out is said when it ends, without another line. */
static void test_log_limit_close(void **state)
{
	(void)state;
	struct log_limit l = {.burst = 2, .window_ms = 1000};
	unsigned left;
	assert_int_equal(log_limit_due_ms(&l), 0); /* no window */
	assert_int_equal(log_limit_close(&l, 99999), 0);
	assert_int_equal(log_limit_take(&l, 5000, &left), 1);
	assert_int_equal(log_limit_take(&l, 5001, &left), 1);
	assert_int_equal(log_limit_due_ms(&l), 0); /* nothing left out: nothing to say */
	assert_int_equal(log_limit_close(&l, 6000), 0);
	assert_int_equal(log_limit_take(&l, 5002, &left), 0);
	assert_int_equal(log_limit_take(&l, 5003, &left), 0);
	assert_int_equal(log_limit_due_ms(&l), 6000);
	/* before the end: nothing, and nothing changes */
	assert_int_equal(log_limit_close(&l, 5999), 0);
	assert_int_equal(l.left_out, 2);
	/* at the end: the two, and the window is closed */
	assert_int_equal(log_limit_close(&l, 6000), 2);
	assert_int_equal(log_limit_due_ms(&l), 0);
	assert_int_equal(log_limit_close(&l, 7000), 0);
	/* the next line opens a new window with nothing more to say */
	assert_int_equal(log_limit_take(&l, 6500, &left), 1);
	assert_int_equal(left, 0);
	assert_int_equal(l.start_ms, 6500);
	/* a line that comes first after the end says it instead, once */
	assert_int_equal(log_limit_take(&l, 6501, &left), 1);
	assert_int_equal(log_limit_take(&l, 6502, &left), 0);
	assert_int_equal(log_limit_take(&l, 7600, &left), 1);
	assert_int_equal(left, 1);
	assert_int_equal(log_limit_close(&l, 8000), 0); /* said already */
}

static void test_now_ms(void **state)
{
	(void)state;
	uint64_t a = now_ms();
	usleep(20000);
	uint64_t b = now_ms();
	assert_true(b >= a + 15);
	assert_true(b < a + 5000);
}

/* --- log levels ------------------------------------------------------- */

static void test_log_levels(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		enum log_level level;
	} all[] = {
		{"debug", LOGL_DEBUG},
		{"info", LOGL_INFO},
		{"warn", LOGL_WARN},
		{"error", LOGL_ERROR},
	};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		enum log_level l = (enum log_level)99;
		assert_int_equal(log_parse_level(all[i].name, &l), 0);
		assert_int_equal(l, all[i].level);
		assert_string_equal(log_level_name(all[i].level), all[i].name);
	}
	const char *junk[] = {"",      "warning", "err",    "inf",  "debug ",
			      " info", "fatal",   "trace",  "0",    "1",
			      "debugx", "d",      "info\n", "errors"};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		enum log_level l = LOGL_WARN;
		if (log_parse_level(junk[i], &l) != -1)
			print_error("log_parse_level(\"%s\") accepted\n", junk[i]);
		assert_int_equal(log_parse_level(junk[i], &l), -1);
	}

	enum log_level saved = log_get_level();
	log_set_level(LOGL_ERROR);
	assert_int_equal(log_get_level(), LOGL_ERROR);
	log_set_level(saved);
	assert_int_equal(log_get_level(), saved);
}

/* --- log lines -------------------------------------------------------- */

struct logrun {
	pid_t pid;
	int status;
	size_t len;
	char out[16384];
};

static struct logrun logrun; /* static: nothing to free when an assert fails */

/* Run fn in a child with stderr captured; its return value is the status. */
static void run_logged(int (*fn)(const void *), const void *arg, struct logrun *r)
{
	FILE *f = tmpfile();
	assert_non_null(f);
	int fd = fileno(f);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Not cmocka's handlers: a crash must end the child. */
		const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS};
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			signal(sigs[i], SIG_DFL);
		dup2(fd, STDERR_FILENO);
		_exit(fn(arg));
	}
	r->pid = pid;
	assert_int_equal(waitpid(pid, &r->status, 0), pid);
	ssize_t n = pread(fd, r->out, sizeof(r->out) - 1, 0);
	assert_true(n >= 0);
	r->len = (size_t)n;
	r->out[n] = '\0';
	fclose(f);
}

static void expect_exit(const struct logrun *r, int code)
{
	if (WIFSIGNALED(r->status))
		print_error("child killed by signal %d (want exit %d); stderr began: %.600s\n",
			    WTERMSIG(r->status), code, r->out);
	else if (WEXITSTATUS(r->status) != code)
		print_error("child exit %d (want exit %d); stderr began: %.600s\n",
			    WEXITSTATUS(r->status), code, r->out);
	assert_true(WIFEXITED(r->status));
	assert_int_equal(WEXITSTATUS(r->status), code);
}

/* "2024-01-02T03:04:05.678Z " */
static int is_timestamp(const char *s)
{
	const char *tpl = "0000-00-00T00:00:00.000Z ";
	for (size_t i = 0; tpl[i]; i++) {
		if (tpl[i] == '0' ? (s[i] < '0' || s[i] > '9') : s[i] != tpl[i])
			return 0;
	}
	return 1;
}

/* Line i of the output (without its newline) is "TS ident[pid] rest". */
static void expect_line(const struct logrun *r, int i, const char *ident,
			const char *rest)
{
	const char *p = r->out;
	for (int k = 0; k < i; k++) {
		p = strchr(p, '\n');
		assert_non_null(p);
		p++;
	}
	const char *nl = strchr(p, '\n');
	assert_non_null(nl);
	char want[512];
	snprintf(want, sizeof(want), "%s[%d] %s", ident, (int)r->pid, rest);
	assert_true(is_timestamp(p));
	size_t tl = strlen("0000-00-00T00:00:00.000Z ");
	if ((size_t)(nl - p) != tl + strlen(want) || memcmp(p + tl, want, strlen(want)))
		print_error("line %d: '%.*s', want '...%s'\n", i, (int)(nl - p), p, want);
	assert_int_equal((size_t)(nl - p), tl + strlen(want));
	assert_memory_equal(p + tl, want, strlen(want));
}

static size_t count_lines(const struct logrun *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->len; i++)
		n += r->out[i] == '\n';
	return n;
}

static int log_levels_child(const void *arg)
{
	(void)arg;
	log_init("t-ident");
	log_set_level(LOGL_INFO);
	log_debug("hidden");
	log_info("hello %d", 5);
	log_warn("w");
	errno = EADDRINUSE;
	log_error("e %s", "x");
	if (errno != EADDRINUSE) /* logging keeps errno */
		return 3;
	log_set_level(LOGL_ERROR);
	log_info("hidden");
	log_warn("hidden");
	log_error("last");
	log_set_level(LOGL_DEBUG);
	log_debug("dbg");
	return 0;
}

static int log_journal_child(const void *arg)
{
	const char *how = arg;
	char js[64];
	struct stat st;
	if (strcmp(how, "match") == 0) {
		if (fstat(STDERR_FILENO, &st) < 0)
			return 5;
		snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino);
		setenv("JOURNAL_STREAM", js, 1);
	} else {
		setenv("JOURNAL_STREAM", how, 1);
	}
	log_init("t-ident");
	log_set_level(LOGL_DEBUG);
	log_info("a %d", 1);
	log_warn("b");
	log_error("c");
	log_debug("d");
	return 0;
}

/* Under systemd ($JOURNAL_STREAM names our stderr): "<N>level: msg". */
/* %(here)s expansion, shared by batond's config loader and batonctl. */
static void test_expand_here(void **state)
{
	char out[32];
	(void)state;
	assert_int_equal(util_expand_here("/etc/b", "%(here)s/x.sock", out, sizeof(out)), 0);
	assert_string_equal(out, "/etc/b/x.sock");
	assert_int_equal(util_expand_here("/d", "a%(here)sb%(here)s", out, sizeof(out)), 0);
	assert_string_equal(out, "a/db/d");
	assert_int_equal(util_expand_here("/d", "%(here)", out, sizeof(out)), 0);
	assert_string_equal(out, "%(here)"); /* not the whole token: kept */
	assert_int_equal(util_expand_here("/d", "", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	/* exactly full (31 bytes + NUL) fits; one more does not */
	assert_int_equal(util_expand_here("/0123456789012345678901234567", "%(here)s/a", out, sizeof(out)), 0);
	assert_int_equal(strlen(out), 31);
	assert_int_equal(util_expand_here("/0123456789012345678901234567", "%(here)s/ab", out, sizeof(out)), -1);
	/* "/.." and "/." right after %(here)s are resolved (here is a real path). */
	assert_int_equal(util_expand_here("/srv/baton/etc", "unix:%(here)s/../run/http.sock", out, sizeof(out)), 0);
	assert_string_equal(out, "unix:/srv/baton/run/http.sock");
	assert_int_equal(util_expand_here("/srv/baton/etc", "%(here)s/../../x", out, sizeof(out)), 0);
	assert_string_equal(out, "/srv/x");
	assert_int_equal(util_expand_here("/srv/baton/etc", "%(here)s/./a/../b", out, sizeof(out)), 0);
	assert_string_equal(out, "/srv/baton/etc/a/../b"); /* a may be a symlink: left alone */
	assert_int_equal(util_expand_here("/srv", "%(here)s/../../../x", out, sizeof(out)), 0);
	assert_string_equal(out, "/x"); /* never above the root */
	assert_int_equal(util_expand_here("/srv/e", "%(here)s/..", out, sizeof(out)), 0);
	assert_string_equal(out, "/srv");
	assert_int_equal(util_expand_here("/srv/e", "%(here)s/..x", out, sizeof(out)), 0);
	assert_string_equal(out, "/srv/e/..x");
}

static void test_log_journal(void **state)
{
	(void)state;
	struct logrun *r = &logrun;
	run_logged(log_journal_child, "match", r);
	expect_exit(r, 0);
	assert_string_equal(r->out, "<6>info: a 1\n<4>warn: b\n<3>error: c\n<7>debug: d\n");
	/* another stream, or garbage: the usual timestamped lines */
	const char *other[] = {"1:2", "x", "12:34:56", ""};
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		run_logged(log_journal_child, other[i], r);
		expect_exit(r, 0);
		assert_int_equal(count_lines(r), 4);
		expect_line(r, 0, "t-ident", "info: a 1");
	}
}

static int file_has(const char *path, const char *want)
{
	char buf[4096];
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, want) != NULL;
}

static int log_file_child(const void *arg)
{
	const char *dir = arg;
	char path[512], rotated[512], err[256];
	snprintf(path, sizeof(path), "%s/b.log", dir);
	snprintf(rotated, sizeof(rotated), "%s/b.log.1", dir);
	log_init("t-ident");
	log_info("on stderr");
	if (log_reopen(err, sizeof(err)) != 0 || log_file_path()[0])
		return 10; /* nothing to reopen */
	if (log_open_file(path, err, sizeof(err)) < 0)
		return 11;
	if (strcmp(log_file_path(), path) != 0)
		return 12;
	log_info("one");
	if (rename(path, rotated) < 0)
		return 13;
	log_info("two"); /* still the old file, now b.log.1 */
	if (log_reopen(err, sizeof(err)) < 0)
		return 14;
	log_info("three");
	if (!file_has(rotated, "info: one") || !file_has(rotated, "info: two") ||
	    file_has(rotated, "three") || !file_has(path, "info: three") || file_has(path, "two"))
		return 15;
	/* a file that cannot be opened: an error, and the old one stays */
	if (log_open_file("/nonexistent-dir/x.log", err, sizeof(err)) == 0)
		return 16;
	if (!strstr(err, "cannot open log file /nonexistent-dir/x.log"))
		return 17;
	log_info("four");
	if (!file_has(path, "info: four") || strcmp(log_file_path(), path) != 0)
		return 18;
	if (file_has(path, "on stderr"))
		return 19;
	fatal("the end"); /* to the file and to stderr */
}

static void test_log_file_reopen(void **state)
{
	(void)state;
	char dir[] = "/tmp/baton-log-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	struct logrun *r = &logrun;
	run_logged(log_file_child, dir, r);
	expect_exit(r, 1);
	/* stderr: the line before the file, and the fatal one */
	assert_int_equal(count_lines(r), 2);
	expect_line(r, 0, "t-ident", "info: on stderr");
	expect_line(r, 1, "t-ident", "error: the end");
	snprintf(path, sizeof(path), "%s/b.log", dir);
	assert_true(file_has(path, "error: the end"));
	unlink(path);
	snprintf(path, sizeof(path), "%s/b.log.1", dir);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

static void test_log_lines(void **state)
{
	(void)state;
	struct logrun *r = &logrun;
	run_logged(log_levels_child, NULL, r);
	expect_exit(r, 0);
	assert_int_equal(count_lines(r), 5);
	assert_int_equal(r->out[r->len - 1], '\n');
	expect_line(r, 0, "t-ident", "info: hello 5");
	expect_line(r, 1, "t-ident", "warn: w");
	expect_line(r, 2, "t-ident", "error: e x");
	expect_line(r, 3, "t-ident", "error: last");
	expect_line(r, 4, "t-ident", "debug: dbg");
}

static int log_long_child(const void *arg)
{
	size_t n = *(const size_t *)arg;
	char *m = malloc(n + 1);
	if (!m)
		return 4;
	memset(m, 'm', n);
	m[n] = '\0';
	log_init("t");
	log_info("%s", m);
	log_info("after");
	free(m);
	return 0;
}

/* An over-long message is cut to one line of at most 2047 bytes. */
static void test_log_long_message(void **state)
{
	(void)state;
	const size_t sizes[] = {2000, 2047, 2048, 5000, 100000};
	struct logrun *r = &logrun;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		run_logged(log_long_child, &sizes[i], r);
		expect_exit(r, 0);
		assert_int_equal(count_lines(r), 2);
		const char *nl = strchr(r->out, '\n');
		assert_true(nl - r->out + 1 <= 2047);
		assert_true(is_timestamp(r->out));
		const char *body = strstr(r->out, "info: ");
		assert_non_null(body);
		for (const char *p = body + 6; p < nl; p++)
			assert_int_equal(*p, 'm');
		expect_line(r, 1, "t", "info: after");
	}
}

static int log_fatal_child(const void *arg)
{
	(void)arg;
	log_init("t");
	fatal("boom %s", "now");
}

static void test_log_fatal(void **state)
{
	(void)state;
	struct logrun *r = &logrun;
	run_logged(log_fatal_child, NULL, r);
	expect_exit(r, 1);
	assert_int_equal(count_lines(r), 1);
	expect_line(r, 0, "t", "error: boom now");
}

static int log_long_ident_child(const void *arg)
{
	size_t n = *(const size_t *)arg;
	char *ident = malloc(n + 1);
	if (!ident)
		return 4;
	memset(ident, 'i', n);
	ident[n] = '\0';
	log_init(ident);
	log_info("x");
	log_info("y");
	return 0;
}

/*
 * BUG (common/log.c, vlog): when the "TS ident[pid] level: " prefix is
 * longer than the 2048-byte line buffer, snprintf returns the untruncated
 * length n > sizeof(line), and vsnprintf(line + n, sizeof(line) - n - 1, ...)
 * then writes the message past the end of line (the size wraps to a huge
 * size_t).  ASan: stack-buffer-overflow with an ident of 2100 bytes; the
 * plain build segfaults with 100000.  Expected: two lines of at most 2047
 * bytes each, exit 0.  Only log_init("batond") exists today, so this is
 * latent, but any longer ident (e.g. a program name) would hit it.
 */
static void test_log_long_ident(void **state)
{
	(void)state;
	const size_t sizes[] = {2100, 100000};
	struct logrun *r = &logrun;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		run_logged(log_long_ident_child, &sizes[i], r);
		if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0)
			print_error("ident of %zu bytes:\n", sizes[i]);
		expect_exit(r, 0); /* fails: see BUG above */
		assert_int_equal(count_lines(r), 2);
		const char *nl = strchr(r->out, '\n');
		assert_true(nl - r->out + 1 <= 2047);
		assert_true(r->len - (size_t)(nl - r->out + 1) <= 2047);
	}
}

/* --- log_sanitize: one line, no terminal controls, UTF-8 kept --------- */

#define CLEAN(in, want)                                                         \
	do {                                                                    \
		char buf_[256];                                                 \
		size_t n_ = log_sanitize(buf_, (in), sizeof(in) - 1);           \
		if (n_ != sizeof(want) - 1 || memcmp(buf_, (want), n_) != 0)    \
			print_error("log_sanitize(\"%s\"): '%.*s', want '%s'\n", \
				    #in, (int)n_, buf_, (want));                \
		assert_int_equal(n_, sizeof(want) - 1);                        \
		assert_memory_equal(buf_, (want), n_);                         \
		/* in place gives the same */                                   \
		memcpy(buf_, (in), sizeof(in) - 1);                             \
		assert_int_equal(log_sanitize(buf_, buf_, sizeof(in) - 1), n_); \
		assert_memory_equal(buf_, (want), n_);                         \
	} while (0)

static void test_log_sanitize(void **state)
{
	(void)state;
	CLEAN("plain text\twith a tab ~", "plain text\twith a tab ~");
	CLEAN("", "");
	/* C0 controls, DEL, NUL */
	CLEAN("a\nb\rc\x1b[31md\x07\x7f\x00z", "a?b?c?[31md???z");
	/* raw C1 bytes (8-bit CSI, NEL) are not UTF-8 */
	CLEAN("\x9b" "2J x\x85y\x80\x9f", "?2J x?y??");
	/* C1 code points U+0080-U+009F, as UTF-8: one '?' each */
	CLEAN("a\xc2\x9b" "2Jb\xc2\x85\xc2\x80", "a?2Jb??");
	/* well-formed UTF-8 stays, continuation bytes 0x80-0x9f included */
	CLEAN("\xc2\xa0nbsp \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd",
	      "\xc2\xa0nbsp \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd");
	CLEAN("\xf4\x8f\xbf\xbf\xed\x9f\xbf", "\xf4\x8f\xbf\xbf\xed\x9f\xbf");
	/* overlong, surrogate, above U+10FFFF, bytes never in UTF-8 */
	CLEAN("\xc0\xaf\xc1\xbf", "????");
	CLEAN("\xe0\x80\xaf|\xf0\x80\x80\xaf", "???|????");
	CLEAN("\xed\xa0\x80", "???");
	CLEAN("\xf4\x90\x80\x80|\xf5\x80\x80\x80", "????|????");
	CLEAN("\xfe\xff", "??");
	/* truncated sequences, at the end and before ASCII */
	CLEAN("x\xe2\x82", "x??");
	CLEAN("\xe2\x82x\xf0\x9f\x98 y\xc3", "??x??? y?");
}

static int log_controls_child(const void *arg)
{
	(void)arg;
	log_init("t");
	log_info("a\nforged line\r\x1b[2J\xc2\x9b" "31m \x9b \xc3\xa9 %s", "x\ny");
	return 0;
}

/* What a message carries (a worker's or a client's text) stays one line. */
static void test_log_message_sanitized(void **state)
{
	(void)state;
	struct logrun *r = &logrun;
	run_logged(log_controls_child, NULL, r);
	expect_exit(r, 0);
	assert_int_equal(count_lines(r), 1);
	expect_line(r, 0, "t", "info: a?forged line??[2J?31m ? \xc3\xa9 x?y");
}

/* --- log_open_append: nothing planted in a writable directory --------- */

static void expect_refused(const char *path, const char *why_want)
{
	char why[128] = "";
	int fd = log_open_append(path, why, sizeof(why));
	if (fd != LOG_OPEN_REFUSED || strcmp(why, why_want) != 0)
		print_error("log_open_append(%s): %d '%s', want refused '%s'\n", path, fd, why,
			    why_want);
	assert_int_equal(fd, LOG_OPEN_REFUSED);
	assert_string_equal(why, why_want);
}

static void test_log_open_append(void **state)
{
	(void)state;
	char dir[] = "/tmp/baton-open-XXXXXX", a[64], b[64], l[64], why[128];
	struct stat st;
	assert_non_null(mkdtemp(dir));
	int nfds = 0;
	for (int i = 0; i < 1024; i++)
		nfds += fcntl(i, F_GETFD) >= 0;
	mode_t um = umask(022);

	/* a new file: 0640, appending, close-on-exec, blocking */
	snprintf(a, sizeof(a), "%s/a.log", dir);
	int fd = log_open_append(a, why, sizeof(why));
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	int fl = fcntl(fd, F_GETFL);
	assert_true(fl & O_APPEND);
	assert_false(fl & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(write(fd, "one\n", 4), 4);
	close(fd);
	/* an existing one of ours: appended to */
	fd = log_open_append(a, why, sizeof(why));
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "two\n", 4), 4);
	close(fd);
	assert_true(file_has(a, "one\ntwo\n"));

	/* a symlink, to a file or to nothing: refused, neither touched */
	snprintf(l, sizeof(l), "%s/l.log", dir);
	assert_int_equal(symlink(a, l), 0);
	expect_refused(l, "is a symlink");
	assert_int_equal(unlink(l), 0);
	snprintf(b, sizeof(b), "%s/missing", dir);
	assert_int_equal(symlink(b, l), 0);
	expect_refused(l, "is a symlink");
	assert_int_equal(lstat(b, &st), -1);
	assert_int_equal(unlink(l), 0);
	assert_int_equal(stat(a, &st), 0);
	assert_int_equal(st.st_size, 8);

	/* a hard link to a file: refused, by either name */
	snprintf(b, sizeof(b), "%s/b.log", dir);
	assert_int_equal(link(a, b), 0);
	expect_refused(b, "has 2 hard links");
	expect_refused(a, "has 2 hard links");
	assert_int_equal(unlink(b), 0);

	/* a FIFO, without a reader (must not block) and with one */
	assert_int_equal(mkfifo(b, 0600), 0);
	expect_refused(b, "not a regular file");
	int rd = open(b, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(rd >= 0);
	expect_refused(b, "not a regular file");
	close(rd);
	assert_int_equal(unlink(b), 0);

	/* someone else's file: only root can make one */
	if (geteuid() == 0) {
		fd = open(b, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		assert_true(fd >= 0);
		close(fd);
		assert_int_equal(chown(b, 65534, 65534), 0);
		expect_refused(b, "owned by uid 65534, not root or batond's user");
		assert_int_equal(unlink(b), 0);
	}

	/* what cannot be opened at all: an error, not a refusal */
	snprintf(b, sizeof(b), "%s/no/such.log", dir);
	errno = 0;
	assert_int_equal(log_open_append(b, why, sizeof(why)), LOG_OPEN_FAILED);
	assert_int_equal(errno, ENOENT);
	assert_string_equal(why, strerror(ENOENT));
	assert_int_equal(log_open_append(dir, why, sizeof(why)), LOG_OPEN_FAILED);
	assert_int_equal(errno, EISDIR);
	/* a tiny buffer is cut, terminated */
	char tiny[4];
	assert_int_equal(symlink(a, l), 0);
	assert_int_equal(log_open_append(l, tiny, sizeof(tiny)), LOG_OPEN_REFUSED);
	assert_string_equal(tiny, "is ");
	assert_int_equal(unlink(l), 0);

	umask(um);
	int after = 0;
	for (int i = 0; i < 1024; i++)
		after += fcntl(i, F_GETFD) >= 0;
	assert_int_equal(after, nfds);
	assert_int_equal(unlink(a), 0);
	assert_int_equal(rmdir(dir), 0);
}

static int log_file_refused_child(const void *arg)
{
	const char *dir = arg;
	char path[512], rotated[512], target[512], err[512], want[600];
	snprintf(path, sizeof(path), "%s/b.log", dir);
	snprintf(rotated, sizeof(rotated), "%s/b.log.1", dir);
	snprintf(target, sizeof(target), "%s/target", dir);
	log_init("t");
	int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return 10;
	close(fd);
	/* at start-up: a symlink is refused, logging stays on stderr */
	if (symlink(target, path) < 0)
		return 11;
	if (log_open_file(path, err, sizeof(err)) != -1)
		return 12;
	snprintf(want, sizeof(want), "refusing log file path=%s reason=\"is a symlink\"", path);
	if (strcmp(err, want) != 0 || log_file_path()[0])
		return 13;
	log_info("on stderr");
	/* on reopen (SIGUSR1): the old file goes on */
	if (unlink(path) < 0 || log_open_file(path, err, sizeof(err)) < 0)
		return 14;
	log_info("one");
	if (rename(path, rotated) < 0 || symlink(target, path) < 0)
		return 15;
	if (log_reopen(err, sizeof(err)) != -1 || strcmp(err, want) != 0)
		return 16;
	if (strcmp(log_file_path(), path) != 0)
		return 17;
	log_info("two");
	if (!file_has(rotated, "info: one") || !file_has(rotated, "info: two"))
		return 18;
	struct stat st;
	if (stat(target, &st) < 0 || st.st_size != 0)
		return 19;
	return 0;
}

static void test_log_file_refused(void **state)
{
	(void)state;
	char dir[] = "/tmp/baton-log-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	struct logrun *r = &logrun;
	run_logged(log_file_refused_child, dir, r);
	expect_exit(r, 0);
	assert_int_equal(count_lines(r), 1);
	expect_line(r, 0, "t", "info: on stderr");
	const char *names[] = {"b.log", "b.log.1", "target"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		assert_int_equal(unlink(path), 0);
	}
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_ok),
		cmocka_unit_test(test_duration_bad),
		cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_parse_int),
		cmocka_unit_test(test_parse_bool),
		cmocka_unit_test(test_parse_mode),
		cmocka_unit_test(test_addr_parse_ok),
		cmocka_unit_test(test_addr_parse_bad),
		cmocka_unit_test(test_addr_parse_small_err),
		cmocka_unit_test(test_addr_format),
		cmocka_unit_test(test_addr_roundtrip),
		cmocka_unit_test(test_addr_bind),
		cmocka_unit_test(test_fd_flags),
		cmocka_unit_test(test_fd_open_std),
		cmocka_unit_test(test_fd_close_all),
		cmocka_unit_test(test_log_limit),
		cmocka_unit_test(test_log_limit_close),
		cmocka_unit_test(test_now_ms),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_log_lines),
		cmocka_unit_test(test_log_journal),
		cmocka_unit_test(test_expand_here),
		cmocka_unit_test(test_log_file_reopen),
		cmocka_unit_test(test_log_long_message),
		cmocka_unit_test(test_log_fatal),
		cmocka_unit_test(test_log_long_ident),
		cmocka_unit_test(test_log_sanitize),
		cmocka_unit_test(test_log_message_sanitized),
		cmocka_unit_test(test_log_open_append),
		cmocka_unit_test(test_log_file_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
