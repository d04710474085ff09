/*
 * The control protocol (common/ctl.c): request lines both ways, response
 * lines, the command table and JSON string escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "command.h"
#include "ctl.h"

#define LONG_WORD 1100

/* Parse line (len bytes); expect -1 and an error containing want. */
#define REQ_BAD(line, len, want)                                               \
	do {                                                                   \
		struct ctl_request r_;                                         \
		char e_[256] = "";                                             \
		int rc_ = ctl_parse_request((line), (len), &r_, e_, sizeof(e_)); \
		if (rc_ != -1 || !strstr(e_, (want)))                          \
			print_error("line %d: rc %d err '%s', want -1 and '%s'\n", \
				    __LINE__, rc_, e_, (want));                \
		assert_int_equal(rc_, -1);                                     \
		assert_non_null(strstr(e_, (want)));                           \
	} while (0)

#define REQ_BAD_S(s, want) REQ_BAD((s), strlen(s), (want))

static int parse_ok(const char *line, size_t len, struct ctl_request *r)
{
	char err[256] = "";
	int rc = ctl_parse_request(line, len, r, err, sizeof(err));
	if (rc != 0)
		print_error("'%.*s': %s\n", (int)len, line, err);
	return rc;
}

/* --- request round trips --------------------------------------------- */

static void roundtrip(int json, int argc, char *const argv[], const char *want)
{
	char buf[CTL_LINE_MAX + 1], err[256] = "";
	struct ctl_request r;

	memset(buf, 'Z', sizeof(buf));
	int n = ctl_format_request(json, argc, argv, buf, sizeof(buf), err, sizeof(err));
	if (n < 0)
		print_error("format: %s\n", err);
	assert_true(n > 0);
	assert_int_equal(strlen(buf), n);
	assert_int_equal(buf[n - 1], '\n');
	if (want)
		assert_string_equal(buf, want);

	assert_int_equal(parse_ok(buf, (size_t)n, &r), 0);
	assert_int_equal(r.json, json);
	assert_int_equal(r.argc, argc);
	for (int i = 0; i < argc; i++) {
		assert_string_equal(r.argv[i], argv[i]);
		/* argv points into the request's own buffer. */
		assert_true(r.argv[i] >= r.buf && r.argv[i] < r.buf + sizeof(r.buf));
	}
	assert_null(r.argv[argc]);

	/* The same line without its '\n' parses the same. */
	assert_int_equal(parse_ok(buf, (size_t)n - 1, &r), 0);
	assert_int_equal(r.argc, argc);
	assert_string_equal(r.argv[argc - 1], argv[argc - 1]);
}

static void test_roundtrip(void **state)
{
	(void)state;
	char *status[] = {"status"};
	char *status2[] = {"status", "web", "api:3"};
	char *scale[] = {"scale", "web", "4"};
	char *sig[] = {"signal", "web:1", "KILL"};
	char *odd[] = {"x", "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", "A", "'"};
	char *sixteen[CTL_ARGS_MAX];
	char words[CTL_ARGS_MAX][8];

	roundtrip(0, 1, status, "baton/1 text status\n");
	roundtrip(1, 1, status, "baton/1 json status\n");
	roundtrip(0, 3, status2, "baton/1 text status web api:3\n");
	roundtrip(1, 3, scale, "baton/1 json scale web 4\n");
	roundtrip(0, 3, sig, "baton/1 text signal web:1 KILL\n");
	roundtrip(0, 4, odd, NULL);
	for (int i = 0; i < CTL_ARGS_MAX; i++) {
		snprintf(words[i], sizeof(words[i]), "w%d", i);
		sixteen[i] = words[i];
	}
	for (int argc = 1; argc <= CTL_ARGS_MAX; argc++) {
		roundtrip(0, argc, sixteen, NULL);
		roundtrip(1, argc, sixteen, NULL);
	}
}

/* One word long enough that the whole line is exactly total bytes. */
static void test_roundtrip_longest(void **state)
{
	(void)state;
	static char word[LONG_WORD];
	char *argv[] = {"status", word};
	char buf[CTL_LINE_MAX + 1], err[256];
	size_t fixed = strlen("baton/1 text status \n");

	memset(word, 'a', CTL_LINE_MAX - fixed);
	word[CTL_LINE_MAX - fixed] = '\0';
	roundtrip(0, 2, argv, NULL);
	int n = ctl_format_request(0, 2, argv, buf, sizeof(buf), err, sizeof(err));
	assert_int_equal(n, CTL_LINE_MAX);

	/* One more byte: over the protocol's limit. */
	word[CTL_LINE_MAX - fixed] = 'a';
	word[CTL_LINE_MAX - fixed + 1] = '\0';
	err[0] = '\0';
	n = ctl_format_request(0, 2, argv, buf, sizeof(buf), err, sizeof(err));
	assert_int_equal(n, -1);
	assert_non_null(strstr(err, "longer than 1024"));
}

/* --- parsing requests ------------------------------------------------ */

static void test_parse_spaces(void **state)
{
	(void)state;
	struct ctl_request r;
	const char *s = "  baton/1   json    scale  web   3   \n";

	assert_int_equal(parse_ok(s, strlen(s), &r), 0);
	assert_int_equal(r.json, 1);
	assert_int_equal(r.argc, 3);
	assert_string_equal(r.argv[0], "scale");
	assert_string_equal(r.argv[1], "web");
	assert_string_equal(r.argv[2], "3");
	assert_null(r.argv[3]);

	/* Bytes past len are not read. */
	s = "baton/1 text status web extra";
	assert_int_equal(parse_ok(s, strlen("baton/1 text status web"), &r), 0);
	assert_int_equal(r.argc, 2);
	assert_string_equal(r.argv[1], "web");
	assert_int_equal(parse_ok(s, strlen("baton/1 text status"), &r), 0);
	assert_int_equal(r.argc, 1);
	assert_int_equal(r.json, 0);
}

static void test_parse_empty(void **state)
{
	(void)state;
	REQ_BAD("", 0, "empty request line");
	REQ_BAD_S("\n", "empty request line");
	REQ_BAD_S(" ", "empty request line");
	REQ_BAD_S("     \n", "empty request line");
}

static void test_parse_version(void **state)
{
	(void)state;
	REQ_BAD_S("status\n", "missing protocol version");
	REQ_BAD_S("text status\n", "missing protocol version");
	REQ_BAD_S("baton text status\n", "missing protocol version");
	REQ_BAD_S("baton/2 text status\n",
		  "unsupported protocol 'baton/2', this batond speaks baton/1");
	REQ_BAD_S("baton/10 text status\n", "unsupported protocol 'baton/10'");
	REQ_BAD_S("baton/1.0 text status\n", "unsupported protocol 'baton/1.0'");
	REQ_BAD_S("BATON/1 text status\n", "unsupported protocol 'BATON/1'");
	REQ_BAD_S("baton/ text status\n", "unsupported protocol 'baton/'");
	REQ_BAD_S("GET / HTTP/1.1\n", "missing protocol version");
	REQ_BAD_S("HTTP/1.1 200\n", "unsupported protocol 'HTTP/1.1'");
	/* The version is judged before the number of words. */
	REQ_BAD_S("baton/9 text a b c d e f g h i j k l m n o p q r s t\n",
		  "unsupported protocol 'baton/9'");
}

static void test_parse_format(void **state)
{
	(void)state;
	REQ_BAD_S("baton/1\n", "missing format");
	REQ_BAD_S("baton/1   \n", "missing format");
	REQ_BAD_S("baton/1 xml status\n", "bad format 'xml': want text or json");
	REQ_BAD_S("baton/1 TEXT status\n", "bad format 'TEXT'");
	REQ_BAD_S("baton/1 texts status\n", "bad format 'texts'");
	REQ_BAD_S("baton/1 jso status\n", "bad format 'jso'");
	REQ_BAD_S("baton/1 status\n", "bad format 'status'");
}

static void test_parse_command(void **state)
{
	(void)state;
	REQ_BAD_S("baton/1 text\n", "missing command");
	REQ_BAD_S("baton/1 json\n", "missing command");
	REQ_BAD_S("baton/1 json    \n", "missing command");
	REQ_BAD("baton/1 json", 12, "missing command");
}

static void test_parse_words(void **state)
{
	(void)state;
	char line[256];
	struct ctl_request r;

	for (int n = 1; n <= CTL_ARGS_MAX + 5; n++) {
		int o = snprintf(line, sizeof(line), "baton/1 text");
		for (int i = 0; i < n; i++)
			o += snprintf(line + o, sizeof(line) - (size_t)o, " a%d", i);
		snprintf(line + o, sizeof(line) - (size_t)o, "\n");
		if (n <= CTL_ARGS_MAX) {
			assert_int_equal(parse_ok(line, strlen(line), &r), 0);
			assert_int_equal(r.argc, n);
			char last[8];
			snprintf(last, sizeof(last), "a%d", n - 1);
			assert_string_equal(r.argv[0], "a0");
			assert_string_equal(r.argv[n - 1], last);
			assert_null(r.argv[n]);
		} else {
			REQ_BAD_S(line, "too many words: at most 16 after the format");
		}
	}
}

static void test_parse_length(void **state)
{
	(void)state;
	char line[CTL_LINE_MAX + 8];
	struct ctl_request r;
	const char *head = "baton/1 text status ";

	/* total bytes, '\n' included when nl. */
	for (size_t total = CTL_LINE_MAX - 2; total <= CTL_LINE_MAX + 2; total++) {
		for (int nl = 0; nl <= 1; nl++) {
			memset(line, 'x', sizeof(line));
			memcpy(line, head, strlen(head));
			if (nl)
				line[total - 1] = '\n';
			/* Without a '\n' the limit still counts one. */
			int fits = total + (nl ? 0 : 1) <= CTL_LINE_MAX;
			if (fits) {
				assert_int_equal(parse_ok(line, total, &r), 0);
				assert_int_equal(r.argc, 2);
				assert_int_equal(strlen(r.argv[1]),
						 total - strlen(head) - (size_t)nl);
			} else {
				REQ_BAD(line, total, "request line longer than 1024 bytes");
			}
		}
	}
	/* A long line is refused as such, whatever it holds. */
	memset(line, 0x01, sizeof(line));
	REQ_BAD(line, CTL_LINE_MAX + 1, "longer than 1024");
}

static void test_parse_bytes(void **state)
{
	(void)state;
	static const unsigned char bad[] = {0x00, 0x01, 0x09, 0x0a, 0x0b, 0x0d,
					    0x1b, 0x1f, 0x7f, 0x80, 0xc3, 0xff};
	const char *good = "baton/1 text status web";
	size_t glen = strlen(good);
	size_t offsets[] = {0, 3, 7, 8, 12, 13, 18, 19, glen - 1};
	char line[64], want[64];

	for (size_t b = 0; b < sizeof(bad); b++) {
		for (size_t k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++) {
			size_t off = offsets[k];
			for (int nl = 0; nl <= 1; nl++) {
				/* A last '\n' ends the line; that is fine. */
				if (bad[b] == '\n' && off == glen - 1 && !nl)
					continue;
				memcpy(line, good, glen);
				line[off] = (char)bad[b];
				line[glen] = '\n';
				snprintf(want, sizeof(want), "byte 0x%02x%s at offset %zu",
					 bad[b],
					 bad[b] == 0x0d && off == glen - 1 ? " (CR)" : "",
					 off);
				REQ_BAD(line, glen + (size_t)nl, want);
			}
		}
	}

	/* The classic: a CRLF line end. */
	REQ_BAD_S("baton/1 text status\r\n", "byte 0x0d (CR) at offset 19");
	REQ_BAD_S("baton/1 text status\r\n", "\\n alone");
	/* A tab is not a separator. */
	REQ_BAD_S("baton/1\ttext status\n", "byte 0x09 at offset 7");
	/* Everything 0x20..0x7e is fine. */
	char all[128];
	int o = snprintf(all, sizeof(all), "baton/1 text x");
	for (int c = 0x21; c <= 0x7e; c++)
		all[o++] = (char)c;
	all[o++] = '\n';
	struct ctl_request r;
	assert_int_equal(parse_ok(all, (size_t)o, &r), 0);
	assert_int_equal(r.argc, 1);
	assert_int_equal(strlen(r.argv[0]), 1 + 0x7e - 0x21 + 1);
}

/* The error text fits any buffer, however small. */
static void test_parse_small_err(void **state)
{
	(void)state;
	struct ctl_request r;
	char err[8];
	memset(err, 'Z', sizeof(err));
	assert_int_equal(ctl_parse_request("baton/2 text x\n", 15, &r, err, 4), -1);
	assert_string_equal(err, "uns");
	assert_int_equal(err[4], 'Z');
	assert_int_equal(ctl_parse_request("baton/2 text x\n", 15, &r, NULL, 0), -1);
}

/* --- formatting requests --------------------------------------------- */

#define FMT_BAD(argc, argv, size, want)                                        \
	do {                                                                   \
		char b_[CTL_LINE_MAX + 16], e_[256] = "";                      \
		memset(b_, 'Z', sizeof(b_));                                   \
		int rc_ = ctl_format_request(0, (argc), (argv), b_, (size), e_, \
					     sizeof(e_));                      \
		if (rc_ != -1 || !strstr(e_, (want)))                          \
			print_error("line %d: rc %d err '%s', want -1 and '%s'\n", \
				    __LINE__, rc_, e_, (want));                \
		assert_int_equal(rc_, -1);                                     \
		assert_non_null(strstr(e_, (want)));                           \
		/* Nothing written past size. */                               \
		for (size_t i_ = (size); i_ < sizeof(b_); i_++)                \
			assert_int_equal(b_[i_], 'Z');                         \
	} while (0)

static void test_format_bad(void **state)
{
	(void)state;
	char *none[] = {NULL};
	char *empty[] = {"status", ""};
	char *empty0[] = {""};
	char *space[] = {"signal", "web", "a b"};
	char *tab[] = {"status", "we\tb"};
	char *nl[] = {"status", "web\n"};
	char *cr[] = {"status", "web\r"};
	char *del[] = {"status", "\x7f"};
	char *high[] = {"status", "caf\xc3\xa9"};
	char *ok[] = {"status", "web"};
	char *many[CTL_ARGS_MAX + 1];
	static char word[LONG_WORD];

	FMT_BAD(0, none, CTL_LINE_MAX, "no command");
	FMT_BAD(1, empty0, CTL_LINE_MAX, "argument 0 is empty");
	FMT_BAD(2, empty, CTL_LINE_MAX, "argument 1 is empty");
	FMT_BAD(3, space, CTL_LINE_MAX, "argument 2 has byte 0x20 at offset 1");
	FMT_BAD(2, tab, CTL_LINE_MAX, "argument 1 has byte 0x09 at offset 2");
	FMT_BAD(2, nl, CTL_LINE_MAX, "argument 1 has byte 0x0a at offset 3");
	FMT_BAD(2, cr, CTL_LINE_MAX, "byte 0x0d");
	FMT_BAD(2, del, CTL_LINE_MAX, "byte 0x7f at offset 0");
	FMT_BAD(2, high, CTL_LINE_MAX, "byte 0xc3 at offset 3");
	for (int i = 0; i <= CTL_ARGS_MAX; i++)
		many[i] = "x";
	FMT_BAD(CTL_ARGS_MAX + 1, many, CTL_LINE_MAX, "too many arguments: at most 15");

	memset(word, 'a', sizeof(word) - 1);
	char *huge[] = {"status", word};
	FMT_BAD(2, huge, CTL_LINE_MAX + 16, "request longer than 1024 bytes");

	/* "baton/1 text status web\n" is 24 bytes: 25 with the NUL. */
	FMT_BAD(2, ok, 24, "byte buffer");
	FMT_BAD(2, ok, 10, "byte buffer");
	FMT_BAD(2, ok, 0, "byte buffer");
	char buf[25], err[64];
	assert_int_equal(ctl_format_request(0, 2, ok, buf, sizeof(buf), err, sizeof(err)), 24);
	assert_string_equal(buf, "baton/1 text status web\n");
}

/* --- responses ------------------------------------------------------- */

static void resp_ok(const char *line, char want_kind, int want_code,
		    const char *want_text)
{
	char kind = 0;
	int code = -7;
	const char *text = NULL;
	int rc = ctl_parse_response(line, &kind, &code, &text);
	if (rc != 0)
		print_error("'%s' refused\n", line);
	assert_int_equal(rc, 0);
	assert_int_equal(kind, want_kind);
	if (want_kind == '=')
		assert_int_equal(code, want_code);
	assert_non_null(text);
	assert_string_equal(text, want_text);
	/* text points into line. */
	assert_true(text >= line && text <= line + strlen(line));
}

static void resp_bad(const char *line)
{
	char kind = 0;
	int code = -7;
	const char *text = NULL;
	int rc = ctl_parse_response(line, &kind, &code, &text);
	if (rc != -1)
		print_error("'%s' accepted: kind '%c' code %d\n", line, kind, code);
	assert_int_equal(rc, -1);
}

static void test_response_ok(void **state)
{
	(void)state;
	resp_ok("> stopping web:1", '>', 0, "stopping web:1");
	resp_ok("> ", '>', 0, "");
	resp_ok("| web:1 RUNNING pid 42", '|', 0, "web:1 RUNNING pid 42");
	resp_ok("| ", '|', 0, "");
	resp_ok("|   indented", '|', 0, "  indented");
	resp_ok("| = 3 not final", '|', 0, "= 3 not final");
	resp_ok("| {\"a\": 1}", '|', 0, "{\"a\": 1}");
	resp_ok("= 0", '=', 0, "");
	resp_ok("= 0 ", '=', 0, "");
	resp_ok("= 0 ok", '=', 0, "ok");
	resp_ok("= 1 web:2 did not become ready", '=', 1, "web:2 did not become ready");
	resp_ok("= 3 web:1 is FATAL", '=', 3, "web:1 is FATAL");
	resp_ok("= 4 permission denied", '=', 4, "permission denied");
	resp_ok("= 9", '=', 9, "");
	resp_ok("= 10 x", '=', 10, "x");
	resp_ok("= 199 x", '=', 199, "x");
	resp_ok("= 255 x", '=', 255, "x");
	resp_ok("= 2  two spaces", '=', 2, " two spaces");
}

static void test_response_bad(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", ">", "|", "=", ">x", "|x", "=0", "=0 ok", "= ", "=  0",
		"= x", "= ok", "= -1", "= +1", "= 256", "= 300", "= 999",
		"= 1000", "= 0255", "= 03", "= 00", "= 3x", "= 3x ok", "= 3\tok",
		"= 3,", "= 0x1", "# x", "< x", "x x", " = 0", " | x", "\t| x",
		">\tx", "|\tx",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		resp_bad(bad[i]);
}

/* --- the command table ----------------------------------------------- */

static const struct {
	const char *name;
	int min, max, ro, lr;
	const char *usage;
} want_cmds[] = {
	{"status", 0, 15, 1, 0, "status [NAME...]"},
	{"start", 1, 1, 0, 1, "start NAME"},
	{"stop", 1, 1, 0, 1, "stop NAME"},
	{"restart", 1, 1, 0, 1, "restart NAME"},
	{"scale", 2, 2, 0, 1, "scale NAME N"},
	{"upgrade", 1, 2, 0, 1, "upgrade [--abort] NAME"},
	{"reload", 0, 1, 0, 1, "reload [--dry-run]"},
	{"drain", 1, 1, 0, 0, "drain NAME"},
	{"signal", 2, 2, 0, 0, "signal NAME SIG"},
	{"pid", 0, 1, 1, 0, "pid [NAME]"},
	{"metrics", 0, 0, 1, 0, "metrics"},
	{"version", 0, 0, 1, 0, "version"},
	{"shutdown", 0, 0, 0, 0, "shutdown"},
	{"reexec", 0, 2, 0, 1, "reexec [--binary PATH]"},
	{"help", 0, 1, 1, 0, "help [COMMAND]"},
};
#define NWANT (sizeof(want_cmds) / sizeof(want_cmds[0]))

static void test_commands(void **state)
{
	(void)state;
	size_t n = 0;
	while (ctl_commands[n].name)
		n++;
	assert_int_equal(n, NWANT);

	for (size_t i = 0; i < NWANT; i++) {
		const struct ctl_command *c = ctl_find(want_cmds[i].name);
		assert_non_null(c);
		assert_ptr_equal(c, &ctl_commands[i]);
		assert_string_equal(c->name, want_cmds[i].name);
		assert_string_equal(c->usage, want_cmds[i].usage);
		assert_int_equal(c->min_args, want_cmds[i].min);
		assert_int_equal(c->read_only, want_cmds[i].ro);
		assert_int_equal(c->long_running, want_cmds[i].lr);
		assert_non_null(c->help);
		assert_true(strlen(c->help) > 10);
		assert_null(strchr(c->help, '\n'));
		/* -1: as many as fit in one request. */
		int max = c->max_args < 0 ? CTL_ARGS_MAX - 1 : c->max_args;
		assert_int_equal(max, want_cmds[i].max);
	}
	assert_non_null(strstr(ctl_find("status")->help, "exit 3"));
	assert_non_null(strstr(ctl_find("signal")->help, "TERM"));

	static const char *const unknown[] = {"", "STATUS", "Status", "stat",
					      "statuss", "status ", " status",
					      "help\n", "Reload", "kill"};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		assert_null(ctl_find(unknown[i]));
}

static void test_check_args(void **state)
{
	(void)state;
	char err[128], want[128];

	for (size_t i = 0; i < NWANT; i++) {
		const struct ctl_command *c = ctl_find(want_cmds[i].name);
		snprintf(want, sizeof(want), "usage: batonctl %s", want_cmds[i].usage);
		for (int nargs = 0; nargs <= CTL_ARGS_MAX + 1; nargs++) {
			int ok = nargs >= want_cmds[i].min && nargs <= want_cmds[i].max;
			strcpy(err, "untouched");
			int rc = ctl_check_args(c, nargs, err, sizeof(err));
			if (rc != (ok ? 0 : -1))
				print_error("%s with %d args: rc %d\n", c->name, nargs, rc);
			assert_int_equal(rc, ok ? 0 : -1);
			if (ok)
				assert_string_equal(err, "untouched");
			else
				assert_string_equal(err, want);
		}
	}
}

/* The usage text says what the counts say: one word per required
 * argument, "[X]" per optional one ("[--flag VALUE]": two optional words),
 * "[X...]" for as many as fit. */
static void test_usage_matches_counts(void **state)
{
	(void)state;
	for (const struct ctl_command *c = ctl_commands; c->name; c++) {
		char u[64];
		int req = 0, opt = 0, rest = 0, in_opt = 0;
		snprintf(u, sizeof(u), "%s", c->usage);
		char *save, *w = strtok_r(u, " ", &save);
		assert_string_equal(w, c->name);
		while ((w = strtok_r(NULL, " ", &save))) {
			if (strstr(w, "..."))
				rest = 1;
			else if (w[0] == '[' || in_opt)
				opt++;
			else
				req++;
			in_opt = (w[0] == '[' || in_opt) && !strchr(w, ']');
		}
		assert_int_equal(c->min_args, req);
		if (rest)
			assert_int_equal(c->max_args, -1);
		else
			assert_int_equal(c->max_args, req + opt);
	}
}

static void test_help_line(void **state)
{
	(void)state;
	char buf[256];
	const struct ctl_command *c = ctl_find("scale");
	int n = ctl_help_line(c, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_true(strncmp(buf, "  scale NAME N ", 15) == 0);
	assert_non_null(strstr(buf, c->help));
	/* Every help text starts in the same column. */
	size_t col = strlen(buf) - strlen(c->help);
	for (c = ctl_commands; c->name; c++) {
		ctl_help_line(c, buf, sizeof(buf));
		assert_string_equal(buf + col, c->help);
	}
}

/* --- JSON strings ---------------------------------------------------- */

static void json_is(const char *s, const char *want)
{
	char out[256];
	memset(out, 'Z', sizeof(out));
	size_t n = ctl_json_str(out, sizeof(out), s);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

static void test_json_escape(void **state)
{
	(void)state;
	json_is("", "\"\"");
	json_is("web:1", "\"web:1\"");
	json_is("say \"hi\"", "\"say \\\"hi\\\"\"");
	json_is("C:\\dir\\", "\"C:\\\\dir\\\\\"");
	json_is("a/b", "\"a/b\"");
	json_is("line\nnext", "\"line\\u000anext\"");
	json_is("\t\r\x01\x1f", "\"\\u0009\\u000d\\u0001\\u001f\"");
	json_is("\x7f", "\"\\u007f\"");
	json_is(" ~", "\" ~\"");
	json_is("caf\xc3\xa9", "\"caf\xc3\xa9\"");
	json_is("\x1b[31m", "\"\\u001b[31m\"");
}

/* Every buffer size: the needed length, a NUL, a prefix cut at a piece
 * boundary, and not a byte written past size. */
static void test_json_truncate(void **state)
{
	(void)state;
	const char *s = "a\"\n\\b\x01";
	const char *full = "\"a\\\"\\u000a\\\\b\\u0001\"";
	/* Lengths at which one piece ends. */
	static const size_t bounds[] = {0, 1, 2, 4, 10, 12, 13, 19, 20};
	size_t flen = strlen(full);
	char out[64];

	assert_int_equal(ctl_json_str(NULL, 0, s), flen);
	for (size_t size = 0; size <= flen + 2; size++) {
		memset(out, 'Z', sizeof(out));
		size_t n = ctl_json_str(out, size, s);
		assert_int_equal(n, flen);
		for (size_t i = size; i < sizeof(out); i++)
			assert_int_equal(out[i], 'Z');
		if (size == 0)
			continue;
		size_t got = strlen(out);
		assert_true(got < size);
		assert_memory_equal(out, full, got);
		if (size > flen) {
			assert_string_equal(out, full);
			continue;
		}
		/* The longest piece boundary that fits. */
		size_t want = 0;
		for (size_t b = 0; b < sizeof(bounds) / sizeof(bounds[0]); b++)
			if (bounds[b] < size)
				want = bounds[b];
		assert_int_equal(got, want);
	}
}

/* batond has a handler for every command in the table, and no other. */
static void test_every_command_has_a_handler(void **state)
{
	char err[256] = "";
	(void)state;
	if (command_check(err, sizeof(err)) < 0)
		fail_msg("%s", err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_roundtrip_longest),
		cmocka_unit_test(test_parse_spaces),
		cmocka_unit_test(test_parse_empty),
		cmocka_unit_test(test_parse_version),
		cmocka_unit_test(test_parse_format),
		cmocka_unit_test(test_parse_command),
		cmocka_unit_test(test_parse_words),
		cmocka_unit_test(test_parse_length),
		cmocka_unit_test(test_parse_bytes),
		cmocka_unit_test(test_parse_small_err),
		cmocka_unit_test(test_format_bad),
		cmocka_unit_test(test_response_ok),
		cmocka_unit_test(test_response_bad),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_check_args),
		cmocka_unit_test(test_every_command_has_a_handler),
		cmocka_unit_test(test_usage_matches_counts),
		cmocka_unit_test(test_help_line),
		cmocka_unit_test(test_json_escape),
		cmocka_unit_test(test_json_truncate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
