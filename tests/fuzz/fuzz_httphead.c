/*
 * libFuzzer target for the HTTP endpoint's head parser,
 * supervisor/httphead.c: the input is what a client sent, cut into lines
 * as httpd.c cuts them (at LF, a CR before it dropped), each line an
 * exact-size heap copy with its NUL, fed until the head is complete or
 * rejected.  Every answer must be 0 (more), 1 (complete) or a status
 * httpd.c can send (400, 505), and the parsed request must stay in
 * range.  A broken invariant calls abort(), which libFuzzer reports.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httphead.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                               \
	do {                                                                      \
		if (!(cond)) {                                                    \
			fprintf(stderr, "fuzz_httphead: %s:%d: check failed: %s\n", \
				__FILE__, __LINE__, #cond);                       \
			abort();                                                  \
		}                                                                 \
	} while (0)

static void check_head(const struct http_head *h)
{
	CHECK(h->in_headers == 0 || h->in_headers == 1);
	CHECK(h->method >= HM_NONE && h->method <= HM_UNKNOWN);
	CHECK(h->route >= HR_BAD && h->route <= HR_NOTFOUND);
	CHECK(h->minor == 0 || h->minor == 1);
	CHECK(h->conn_close == 0 || h->conn_close == 1);
	CHECK(h->conn_keepalive == 0 || h->conn_keepalive == 1);
	CHECK(h->has_body == 0 || h->has_body == 1);
	if (!h->in_headers)
		CHECK(h->method == HM_NONE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_head h = {.method = HM_NONE, .route = HR_BAD, .minor = 1};
	size_t at = 0;

	while (at < size) {
		const uint8_t *lf = memchr(data + at, '\n', size - at);
		if (!lf)
			break; /* not all there yet: httpd.c waits for more */
		size_t len = (size_t)(lf - (data + at));
		if (len && data[at + len - 1] == '\r')
			len--;
		char *line = malloc(len + 1);
		CHECK(line);
		memcpy(line, data + at, len);
		line[len] = '\0';
		int was_in = h.in_headers;
		int r = http_head_line(&h, line, len);
		free(line);
		check_head(&h);
		CHECK(r == 0 || r == 1 || r == 400 || r == 505);
		if (r == 505)
			CHECK(!was_in && h.in_headers);
		if (r == 1)
			CHECK(was_in && h.method != HM_NONE);
		if (r)
			break;
		at = (size_t)(lf - data) + 1;
	}
	return 0;
}
