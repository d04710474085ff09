/*
 * The HTTP endpoint's request head (httpd.c), line by line: the request
 * line and the headers that decide the answer.  Pure parsing over bytes a
 * hostile client chose, no I/O, so it is fuzzed on its own
 * (tests/fuzz/fuzz_httphead.c).
 */
#ifndef BATON_HTTPHEAD_H
#define BATON_HTTPHEAD_H

#include <stddef.h>

enum http_method { HM_NONE, HM_GET, HM_HEAD, HM_OTHER, HM_UNKNOWN };
enum http_route { HR_BAD, HR_METRICS, HR_HEALTHZ, HR_READYZ, HR_NOTFOUND };

struct http_head {
	int in_headers; /* the request line is read */
	enum http_method method;
	enum http_route route;
	int minor; /* HTTP/1.minor: 0 or 1 */
	int conn_close, conn_keepalive, has_body;
};

/*
 * One line of the head: len bytes at line (NUL-terminated, without its
 * CRLF or LF; a NUL byte inside is a bad request), modified in place.
 * Returns 0 when more lines are wanted (empty lines before the request
 * line are skipped), 1 when the head is complete (h says what was asked),
 * or the status to reject it with: 400 malformed, 505 not HTTP/1.x.
 */
int http_head_line(struct http_head *h, char *line, size_t len);

#endif
