/*
 * The saved state that crosses `batonctl reexec`: a versioned, self-
 * describing text written into a sealed memfd by the old image and read by
 * the new one (see STATE.md next to this file for the layout and every
 * record).  This module is the codec only: it knows records and fields,
 * not what batond keeps in them.
 *
 *   baton-state VERSION BODY-BYTES CHECKSUM\n     (FNV-1a 64 of the body, hex)
 *   +TYPE\n          a record that must be understood
 *   ?TYPE\n          an optional record: skipped by a reader that does not know TYPE
 *   KEY VALUE\n      its fields; VALUE is %XX-escaped (no space, control, '%' or byte > 0x7e)
 *
 * A reader that meets a required record it does not know fails; fields it
 * does not know are ignored, fields it expects and misses take their
 * defaults or fail, as the reader decides.
 */
#ifndef BATON_STATE_H
#define BATON_STATE_H

#include <stddef.h>
#include <stdint.h>

/* The format version this build writes and reads.  Overridable for the
 * test build that declares an incompatible one. */
#ifndef BATON_STATE_VERSION
#define BATON_STATE_VERSION 1
#endif
#define STATE_MAX_BYTES (64u << 20) /* a state larger than this is refused */
#define STATE_FDS_MAX (1 << 18)     /* fds one state may name (they cross the exec) */

/* ---- writing ---- */

struct state_out {
	char *buf;
	size_t len, cap;
	int failed;        /* out of memory (or too large): state_seal fails */
	int *fds;          /* every fd a field named: they cross the exec */
	int nfds, fdcap;
};

void state_out_init(struct state_out *o);
void state_out_free(struct state_out *o);
/* Start a record; required: a reader must understand it. */
void state_record(struct state_out *o, const char *type, int required);
void state_str(struct state_out *o, const char *key, const char *val);
void state_bytes(struct state_out *o, const char *key, const void *val, size_t len);
void state_u64(struct state_out *o, const char *key, uint64_t val);
void state_i64(struct state_out *o, const char *key, int64_t val);
/* An fd that crosses the exec (and is listed in o->fds); -1 writes -1. */
void state_fd(struct state_out *o, const char *key, int fd);
/*
 * Header and checksum, into a new sealed memfd (close-on-exec set: the
 * caller clears it on the copy it passes); the fd, or -1 with err.
 */
int state_seal(struct state_out *o, char *err, size_t errlen);

/* ---- reading ---- */

struct state_field {
	const char *key;
	char *val;  /* unescaped, NUL-terminated (may hold NUL bytes: see len) */
	size_t len;
};

struct state_rec {
	const char *type;
	int required;
	struct state_field *f;
	int n;
};

struct state {
	uint32_t version;
	char *text; /* the body, cut into the strings below */
	struct state_rec *rec;
	int nrec;
};

/*
 * Parse data (len bytes): header, version, checksum, records, fields.
 * 0, or -1 with the reason in err (nothing to free).
 */
int state_parse(const char *data, size_t len, struct state *st, char *err, size_t errlen);
/* Read all of fd (from offset 0) and parse it. */
int state_read_fd(int fd, struct state *st, char *err, size_t errlen);
void state_free(struct state *st);

/* A field's value, or NULL. */
const char *state_get(const struct state_rec *r, const char *key);
/* Typed getters: 0, or -1 with "TYPE: KEY missing/bad" in err. */
int state_get_str(const struct state_rec *r, const char *key, char *buf, size_t size, char *err,
		  size_t errlen);
int state_get_u64(const struct state_rec *r, const char *key, uint64_t *v, char *err,
		  size_t errlen);
int state_get_int(const struct state_rec *r, const char *key, long long min, long long max,
		  long long *v, char *err, size_t errlen);
/* Like state_get_u64, but a missing field leaves *v as it is. */
int state_opt_u64(const struct state_rec *r, const char *key, uint64_t *v, char *err,
		  size_t errlen);

/* The reason, formatted into err; returns -1 (for readers of records). */
int state_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* FNV-1a 64 (the checksum). */
uint64_t state_checksum(const void *data, size_t len);

#endif
