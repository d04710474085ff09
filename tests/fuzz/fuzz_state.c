/*
 * libFuzzer target for the reexec state codec, supervisor/state.c, and the
 * config sections restored from it (config_restore_section in config.c).
 *
 * Each input is parsed with state_parse() as `batond --check-state` and
 * the new image do; an input refused is parsed once more with its first
 * line replaced by a header that fits the rest (version, length and
 * checksum), so that mutations reach the body behind the checksum.
 * Errors are expected; what must hold is: a refusal
 * says why (a NUL-terminated err) and leaves nothing to free; an accepted
 * state has records of valid types holding fields of valid keys whose
 * values are NUL-terminated at their length.  Every accepted state is
 * written again field by field (state_record / state_bytes) and parsed
 * again: the same records, the same bytes.
 *
 * Every "baton", "listener" and "program" record is restored with
 * config_restore_section() into a zeroed struct of its section, as
 * snapshot_check() does (a listener's name read first; argv and env of
 * programs freed).  A section that
 * restores is saved again (config_save_section) and restored once more:
 * the same config (config_diff_* 0, the same argv and env).
 *
 * Nothing here touches a file descriptor or the system: the getters and
 * restores only read memory.  LeakSanitizer checks that all is freed.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_keys.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ERRLEN 512

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_state: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                    \
			abort();                                                     \
		}                                                                    \
	} while (0)

static int name_chars(const char *s, int dots)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      (dots && *s == '.')))
			return 0;
	return 1;
}

/* o's text under a correct header, parsed into st; 0 or -1 as state_parse. */
static int parse_out(const struct state_out *o, struct state *st, char *err)
{
	char head[96];
	int n = snprintf(head, sizeof(head), "baton-state %d %zu %016" PRIx64 "\n",
			 BATON_STATE_VERSION, o->len, state_checksum(o->buf, o->len));
	CHECK(n > 0 && (size_t)n < sizeof(head));
	char *s = malloc((size_t)n + o->len + 1);
	CHECK(s);
	memcpy(s, head, (size_t)n);
	if (o->len)
		memcpy(s + n, o->buf, o->len);
	int rc = state_parse(s, (size_t)n + o->len, st, err, ERRLEN);
	free(s);
	return rc;
}

static void check_parsed(const struct state *st)
{
	CHECK(st->version == BATON_STATE_VERSION);
	CHECK(st->nrec >= 0);
	CHECK(st->nrec == 0 || st->rec);
	for (int i = 0; i < st->nrec; i++) {
		const struct state_rec *r = &st->rec[i];
		CHECK(strlen(r->type) < 32 && name_chars(r->type, 0));
		CHECK(r->required == 0 || r->required == 1);
		CHECK(r->n >= 0 && (r->n == 0 || r->f));
		for (int j = 0; j < r->n; j++) {
			const struct state_field *f = &r->f[j];
			CHECK(strlen(f->key) < 64 && name_chars(f->key, 1));
			CHECK(f->val[f->len] == '\0');
		}
	}
}

/* Written again and read again: the same records and bytes. */
static void check_rewrite(const struct state *st)
{
	struct state_out o;
	struct state again;
	char err[ERRLEN];
	state_out_init(&o);
	for (int i = 0; i < st->nrec; i++) {
		const struct state_rec *r = &st->rec[i];
		state_record(&o, r->type, r->required);
		for (int j = 0; j < r->n; j++)
			state_bytes(&o, r->f[j].key, r->f[j].val, r->f[j].len);
	}
	CHECK(!o.failed);
	CHECK(o.nfds == 0);
	err[0] = '\0';
	if (parse_out(&o, &again, err) != 0) {
		fprintf(stderr, "fuzz_state: the rewritten state is refused: %s\n", err);
		abort();
	}
	CHECK(again.nrec == st->nrec);
	for (int i = 0; i < st->nrec; i++) {
		const struct state_rec *a = &st->rec[i], *b = &again.rec[i];
		CHECK(strcmp(a->type, b->type) == 0 && a->required == b->required && a->n == b->n);
		for (int j = 0; j < a->n; j++) {
			CHECK(strcmp(a->f[j].key, b->f[j].key) == 0);
			CHECK(a->f[j].len == b->f[j].len);
			CHECK(memcmp(a->f[j].val, b->f[j].val, a->f[j].len + 1) == 0);
		}
	}
	state_free(&again);
	state_out_free(&o);
}

/* The typed getters on every field: whatever they say, they say it safely. */
static void check_getters(const struct state_rec *r)
{
	char err[ERRLEN], buf[64];
	for (int j = 0; j < r->n; j++) {
		const struct state_field *f = &r->f[j];
		uint64_t u = 7;
		long long v = 7;
		CHECK(state_get(r, f->key) != NULL);
		err[0] = '\0';
		if (state_get_str(r, f->key, buf, sizeof(buf), err, sizeof(err)) == 0) {
			CHECK(strlen(buf) < sizeof(buf));
		} else {
			CHECK(err[0]);
			CHECK(memchr(err, '\0', sizeof(err)));
		}
		err[0] = '\0';
		if (state_get_u64(r, f->key, &u, err, sizeof(err)) < 0)
			CHECK(err[0] && u == 7);
		err[0] = '\0';
		if (state_get_int(r, f->key, -1, INT_MAX, &v, err, sizeof(err)) == 0)
			CHECK(v >= -1 && v <= INT_MAX);
		else
			CHECK(err[0] && v == 7);
	}
}

static void strv_equal(char **a, char **b)
{
	CHECK(!a == !b);
	for (; a && *a && *b; a++, b++)
		CHECK(strcmp(*a, *b) == 0);
	CHECK(!a || (!*a && !*b));
}

/* Restore sec from r into a zeroed struct (as snapshot_check); if it takes,
 * save and restore once more: the same config. */
static void check_section(const struct state_rec *r, int sec)
{
	static union {
		struct cfg_baton b;
		struct cfg_listener l;
		struct cfg_program p;
	} one, two;
	char err[ERRLEN];
	struct state_out o;
	struct state st;

	memset(&one, 0, sizeof(one));
	/* As snapshot_check: a listener's name first ("address = systemd"
	 * means its own name); a record without one restores unnamed. */
	if (sec == S_LISTENER)
		state_get_str(r, "name", one.l.name, sizeof(one.l.name), err, sizeof(err));
	err[0] = '\0';
	int rc = config_restore_section(r, sec, &one, err, sizeof(err));
	CHECK(rc == 0 || rc == -1);
	if (rc < 0) {
		CHECK(err[0] && memchr(err, '\0', sizeof(err)));
		CHECK(strncmp(err, r->type, strlen(r->type)) == 0);
		goto out;
	}
	if (sec == S_PROGRAM) {
		for (char **e = one.p.env; e && *e; e++)
			CHECK(strchr(*e, '='));
	}
	/* A key without a default (address, program, command) that the record
	 * lacks is left empty by the restore, and an empty one does not parse:
	 * only a complete section is saved again. */
	for (size_t i = 0; i < config_nkeys; i++) {
		char key[80];
		snprintf(key, sizeof(key), "cfg.%s", config_keys[i].name);
		if ((int)config_keys[i].sec == sec && !config_keys[i].def && !state_get(r, key))
			goto out;
	}
	state_out_init(&o);
	state_record(&o, r->type, 1);
	config_save_section(&o, sec, &one);
	if (parse_out(&o, &st, err) != 0) {
		fprintf(stderr, "fuzz_state: a saved %s section is refused: %s\n", r->type, err);
		abort();
	}
	state_out_free(&o);
	CHECK(st.nrec == 1);
	memset(&two, 0, sizeof(two));
	if (sec == S_LISTENER)
		memcpy(two.l.name, one.l.name, sizeof(two.l.name));
	if (config_restore_section(&st.rec[0], sec, &two, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_state: a saved %s section does not restore: %s\n", r->type,
			err);
		abort();
	}
	if (sec == S_BATON) {
		CHECK(config_check_restart(&one.b, &two.b, err, sizeof(err)) == 0);
		if (one.b.http[0]) /* parsed from the text (a repeated key may leave an old one) */
			CHECK(memcmp(&one.b.http_addr, &two.b.http_addr, sizeof(one.b.http_addr)) == 0);
	} else if (sec == S_LISTENER) {
		CHECK(config_diff_listener(&one.l, &two.l) == 0);
	} else {
		CHECK(config_diff_program(&one.p, &two.p) == 0);
		strv_equal(one.p.argv, two.p.argv);
		strv_equal(one.p.env, two.p.env);
		config_free_strv(two.p.argv);
		config_free_strv(two.p.env);
	}
	state_free(&st);
out:
	if (sec == S_PROGRAM) {
		config_free_strv(one.p.argv);
		config_free_strv(one.p.env);
	}
}

/* The whole check of one state text; 0 if it parsed. */
static int run(const char *data, size_t size)
{
	struct state st;
	char err[ERRLEN];

	memset(err, 'X', sizeof(err));
	if (state_parse(data, size, &st, err, sizeof(err)) < 0) {
		/* "0, or -1 with the reason in err (nothing to free)" */
		CHECK(memchr(err, '\0', sizeof(err)) && err[0] != '\0');
		CHECK(!st.text && !st.rec && st.nrec == 0);
		return -1;
	}
	check_parsed(&st);
	check_rewrite(&st);
	for (int i = 0; i < st.nrec; i++) {
		const struct state_rec *r = &st.rec[i];
		check_getters(r);
		if (strcmp(r->type, "baton") == 0)
			check_section(r, S_BATON);
		else if (strcmp(r->type, "listener") == 0)
			check_section(r, S_LISTENER);
		else if (strcmp(r->type, "program") == 0)
			check_section(r, S_PROGRAM);
	}
	state_free(&st);
	CHECK(!st.text && !st.rec && st.nrec == 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (run((const char *)data, size) == 0)
		return 0;
	/* Refused: most mutations break the checksum or the length, and the
	 * body behind them would never be read.  So the body (after the first
	 * line) goes through once more under a header that fits it. */
	const uint8_t *nl = memchr(data, '\n', size < 96 ? size : 96);
	if (!nl)
		return 0;
	size_t blen = size - (size_t)(nl + 1 - data);
	char head[96];
	int n = snprintf(head, sizeof(head), "baton-state %d %zu %016" PRIx64 "\n",
			 BATON_STATE_VERSION, blen, state_checksum(nl + 1, blen));
	char *fixed = malloc((size_t)n + blen + 1);
	CHECK(fixed);
	memcpy(fixed, head, (size_t)n);
	memcpy(fixed + n, nl + 1, blen);
	run(fixed, (size_t)n + blen);
	free(fixed);
	return 0;
}
