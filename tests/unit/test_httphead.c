/*
 * The HTTP endpoint's head parser (supervisor/httphead.c), line by line:
 * what a request asks for, and the status every malformed line gets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "httphead.h"

/* Feed one line (a copy: the parser writes into it). */
static int feed(struct http_head *h, const char *line, size_t len)
{
	char buf[256];
	assert_true(len < sizeof(buf));
	memcpy(buf, line, len);
	buf[len] = '\0';
	return http_head_line(h, buf, len);
}

#define LINE(h, s) feed((h), (s), sizeof(s) - 1)

static void test_request(void **state)
{
	struct http_head h = {.minor = 1};
	(void)state;
	assert_int_equal(LINE(&h, ""), 0); /* empty lines before the request */
	assert_int_equal(LINE(&h, ""), 0);
	assert_false(h.in_headers);
	assert_int_equal(LINE(&h, "GET /metrics?x#y HTTP/1.1"), 0);
	assert_true(h.in_headers);
	assert_int_equal(h.method, HM_GET);
	assert_int_equal(h.route, HR_METRICS);
	assert_int_equal(h.minor, 1);
	assert_int_equal(LINE(&h, "Host: x"), 0);
	assert_int_equal(LINE(&h, "Connection: Keep-Alive ,  CLOSE"), 0);
	assert_true(h.conn_close && h.conn_keepalive);
	assert_int_equal(LINE(&h, "Content-Length:  000 "), 0);
	assert_false(h.has_body);
	assert_int_equal(LINE(&h, ""), 1); /* complete */

	struct http_head a = {0};
	assert_int_equal(LINE(&a, "HEAD http://h:9/readyz HTTP/1.0"), 0);
	assert_int_equal(a.method, HM_HEAD);
	assert_int_equal(a.route, HR_READYZ);
	assert_int_equal(a.minor, 0);
	struct http_head b = {0};
	assert_int_equal(LINE(&b, "DELETE /healthz HTTP/1.1"), 0);
	assert_int_equal(b.method, HM_OTHER);
	assert_int_equal(b.route, HR_HEALTHZ);
	struct http_head c = {0};
	assert_int_equal(LINE(&c, "BREW /pot HTTP/1.1"), 0);
	assert_int_equal(c.method, HM_UNKNOWN);
	assert_int_equal(c.route, HR_NOTFOUND);
	struct http_head d = {0};
	assert_int_equal(LINE(&d, "GET * HTTP/1.1"), 0);
	assert_int_equal(d.route, HR_BAD);
}

static void test_bad_request_lines(void **state)
{
	static const struct {
		const char *line;
		int status;
	} cases[] = {
		{"GET /x", 400},		 {"GET", 400},
		{"GET  /x HTTP/1.1", 400},	 {"GET /x  HTTP/1.1", 400},
		{"get /x HTTP/1.1", 400},	 {" /x HTTP/1.1", 400},
		{"GET /x HTTP/1.10", 400},	 {"GET /x HTTP/1.", 400},
		{"GET /x http/1.1", 400},	 {"GET /x HTTP/2.0", 505},
		{"GET /x HTTP/0.9", 505},	 {"ABCDEFGHIJKLMNOPQ /x HTTP/1.1", 400},
		{"GET /a\tb HTTP/1.1", 400},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_head h = {0};
		int got = feed(&h, cases[i].line, strlen(cases[i].line));
		if (got != cases[i].status)
			fail_msg("\"%s\": %d, want %d", cases[i].line, got, cases[i].status);
	}
	/* a NUL byte anywhere, request line or header */
	struct http_head h = {0};
	assert_int_equal(feed(&h, "GET /\0x HTTP/1.1", 16), 400);
	struct http_head k = {0};
	assert_int_equal(LINE(&k, "GET / HTTP/1.1"), 0);
	assert_int_equal(feed(&k, "X: a\0b", 6), 400);
}

static void test_headers(void **state)
{
	static const struct {
		const char *line;
		int status, body;
	} cases[] = {
		{"Content-Length: 12", 0, 1},	 {"Content-Length: 0 x", 0, 1},
		{"Content-Length:", 0, 1},	 {"content-length:0", 0, 0},
		{"Transfer-Encoding: chunked", 0, 1},
		{" folded: x", 400, 0},		 {"NoColon", 400, 0},
		{": empty name", 400, 0},	 {"Bad Name: x", 400, 0},
		{"Connection: closed", 0, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_head h = {0};
		assert_int_equal(LINE(&h, "GET / HTTP/1.1"), 0);
		int got = feed(&h, cases[i].line, strlen(cases[i].line));
		if (got != cases[i].status || h.has_body != cases[i].body)
			fail_msg("\"%s\": %d body %d, want %d body %d", cases[i].line, got, h.has_body,
				 cases[i].status, cases[i].body);
		assert_false(h.conn_close); /* "closed" is not the token "close" */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_bad_request_lines),
		cmocka_unit_test(test_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
