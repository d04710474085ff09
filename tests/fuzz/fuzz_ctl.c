/*
 * libFuzzer target for the control protocol codec, common/ctl.c: every
 * function there that reads bytes a client (or batond) sent.
 *
 *  - ctl_parse_request() on the input as the request line batond read
 *    (an exact-size heap copy, no NUL), with an error buffer whose size
 *    comes from the first byte; a parsed request must hold 1..16 words of
 *    printable ASCII without spaces, and ctl_format_request() of those
 *    words must give a line that parses to the same request; an error
 *    text must be one printable line, as it goes into the "= 2" answer;
 *  - ctl_parse_response() on the input as a line batonctl read;
 *  - ctl_json_str() on the input as a string, into buffers of every size
 *    from 0 to past the full length: output is a prefix of the full
 *    output, cut only between escapes, always NUL terminated.
 * A broken invariant calls abort(), which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "fuzz_ctl: %s:%d: check failed: %s\n", \
				__FILE__, __LINE__, #cond);                  \
			abort();                                             \
		}                                                            \
	} while (0)

static int printable(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e;
}

static void check_error_text(const char *err, size_t errlen)
{
	if (errlen == 0)
		return;
	size_t n = strnlen(err, errlen);
	CHECK(n < errlen);
	CHECK(errlen == 1 || n > 0);
	for (size_t i = 0; i < n; i++)
		CHECK(printable((unsigned char)err[i]));
}

static void check_request(const struct ctl_request *req)
{
	CHECK(req->json == 0 || req->json == 1);
	CHECK(req->argc >= 1 && req->argc <= CTL_ARGS_MAX);
	CHECK(req->argv[req->argc] == NULL);
	for (int i = 0; i < req->argc; i++) {
		const char *a = req->argv[i];
		CHECK(a >= req->buf && a < req->buf + sizeof(req->buf));
		size_t n = strnlen(a, (size_t)(req->buf + sizeof(req->buf) - a));
		CHECK(n > 0 && a + n < req->buf + sizeof(req->buf));
		for (size_t j = 0; j < n; j++)
			CHECK(printable((unsigned char)a[j]) && a[j] != ' ');
	}

	/* The words make a request line that parses back to them. */
	char line[CTL_LINE_MAX + 1], err[256];
	struct ctl_request *again = malloc(sizeof(*again));
	CHECK(again);
	int n = ctl_format_request(req->json, req->argc, req->argv, line,
				   sizeof(line), err, sizeof(err));
	if (n < 0) {
		fprintf(stderr, "fuzz_ctl: parsed request does not format: %s\n", err);
		abort();
	}
	CHECK(n >= 1 && n <= CTL_LINE_MAX && line[n - 1] == '\n' && line[n] == '\0');
	CHECK(ctl_parse_request(line, (size_t)n, again, err, sizeof(err)) == 0);
	CHECK(again->json == req->json && again->argc == req->argc);
	for (int i = 0; i < req->argc; i++)
		CHECK(strcmp(again->argv[i], req->argv[i]) == 0);
	free(again);

	/* What batond does next with it. */
	const struct ctl_command *c = ctl_find(req->argv[0]);
	if (c) {
		char help[512];
		CHECK(strcmp(c->name, req->argv[0]) == 0);
		if (ctl_check_args(c, req->argc - 1, err, sizeof(err)) < 0)
			check_error_text(err, sizeof(err));
		CHECK(ctl_help_line(c, help, sizeof(help)) > 0);
	}
}

static void parse_request(const uint8_t *data, size_t size)
{
	/* As batond: the line with its '\n', in a buffer of just that size. */
	char *line = malloc(size ? size : 1);
	struct ctl_request *req = malloc(sizeof(*req));
	CHECK(line && req);
	if (size)
		memcpy(line, data, size);
	size_t errlen = size ? data[0] : 0; /* 0..255: batond uses 256 */
	char *err = malloc(errlen ? errlen : 1);
	CHECK(err);

	if (ctl_parse_request(line, size, req, err, errlen) == 0) {
		size_t n = size && line[size - 1] == '\n' ? size - 1 : size;
		CHECK(n + 1 <= CTL_LINE_MAX);
		for (size_t i = 0; i < n; i++)
			CHECK(printable((unsigned char)line[i]));
		check_request(req);
	} else {
		check_error_text(err, errlen);
	}
	free(err);
	free(req);
	free(line);
}

static void parse_response(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	CHECK(line);
	memcpy(line, data, size);
	line[size] = '\0';
	char kind = 0;
	int code = -1;
	const char *text = NULL;
	if (ctl_parse_response(line, &kind, &code, &text) == 0) {
		size_t len = strlen(line);
		CHECK(kind == '>' || kind == '|' || kind == '=');
		CHECK(line[0] == kind && line[1] == ' ');
		CHECK(text >= line + 2 && text <= line + len);
		if (kind == '=')
			CHECK(code >= 0 && code <= 255);
	}
	free(line);
}

/* Walk a complete JSON string literal and record where each piece ends:
 * those are the only places ctl_json_str() may cut. */
static size_t piece_ends(const char *s, size_t len, unsigned char *end)
{
	size_t n = 0;
	memset(end, 0, len + 1);
	CHECK(len >= 2 && s[0] == '"' && s[len - 1] == '"');
	end[1] = 1;
	for (size_t i = 1; i < len - 1;) {
		unsigned char c = (unsigned char)s[i];
		size_t w = 1;
		CHECK(c >= 0x20 && c != 0x7f && c != '"');
		if (c == '\\') {
			CHECK(i + 1 < len - 1);
			if (s[i + 1] == 'u') {
				w = 6;
				CHECK(i + 6 <= len - 1 && strncmp(s + i, "\\u00", 4) == 0);
			} else {
				w = 2;
				CHECK(s[i + 1] == '"' || s[i + 1] == '\\');
			}
		}
		i += w;
		end[i] = 1;
		n++;
	}
	end[len] = 1;
	return n;
}

static void json_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	CHECK(s);
	memcpy(s, data, size);
	s[size] = '\0';
	size_t slen = strlen(s);

	size_t full = ctl_json_str(NULL, 0, s);
	CHECK(full >= slen + 2 && full <= slen * 6 + 2);
	char *ref = malloc(full + 1);
	unsigned char *end = malloc(full + 1);
	CHECK(ref && end);
	CHECK(ctl_json_str(ref, full + 1, s) == full);
	CHECK(strlen(ref) == full);
	CHECK(piece_ends(ref, full, end) == slen);

	/* Buffer sizes: the smallest ones, those that cut near the end
	 * (full + 1 fits it all), and eight spread between. */
	size_t sizes[26];
	int ns = 0;
	for (size_t k = 1; k <= 8; k++) {
		sizes[ns++] = k;
		sizes[ns++] = 1 + full * k / 9;
	}
	for (size_t k = 0; k <= 8 && k < full; k++)
		sizes[ns++] = full + 1 - k;
	for (int i = 0; i < ns; i++) {
		size_t size2 = sizes[i];
		char *out = malloc(size2);
		CHECK(out);
		CHECK(ctl_json_str(out, size2, s) == full);
		size_t w = strnlen(out, size2);
		CHECK(w < size2);
		CHECK(memcmp(out, ref, w) == 0);
		CHECK(end[w] || w == 0);
		/* The longest prefix that fits: the next piece would not. */
		for (size_t k = w + 1; k < size2 && k <= full; k++)
			CHECK(!end[k]);
		free(out);
	}
	free(end);
	free(ref);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_request(data, size);
	parse_response(data, size);
	json_str(data, size);
	return 0;
}
