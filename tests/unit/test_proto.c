/*
 * The worker protocol codec (common/proto.c): round-trips for every type,
 * the exact wire bytes of a few messages, what proto_encode refuses and
 * every way proto_decode rejects a record.
 *
 * Decoding always reads from a heap copy of exactly the received length, so
 * under ASan any read past the record is caught.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"


#define BIG (PROTO_HDR_SIZE + 8 + 0x10000 * PROTO_CONN_SIZE)

static const enum proto_side sides[] = {PROTO_AT_WORKER, PROTO_AT_SUPERVISOR};

static const char *err_name(enum proto_err e)
{
	static const char *const n[] = {
		"PROTO_OK",    "PROTO_ESHORT", "PROTO_EVERSION", "PROTO_ELENGTH",
		"PROTO_ETYPE", "PROTO_ESIZE",  "PROTO_ECOUNT",   "PROTO_EFIELD",
		"PROTO_EFDS",  "PROTO_ETRUNC",
	};
	if ((unsigned)e < sizeof(n) / sizeof(n[0]))
		return n[e];
	return "?";
}

/* Decode from a heap copy of exactly len bytes. */
static enum proto_err dec(enum proto_side side, const uint8_t *buf, size_t len,
			  int nfds, struct proto_msg *msg)
{
	uint8_t *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	if (len)
		memcpy(copy, buf, len);
	enum proto_err e = proto_decode(side, copy, len, nfds, msg);
	free(copy);
	return e;
}

/* Assert that decoding gives exactly want; say which case on failure. */
#define DECODE_IS(want, side, buf, len, nfds, what)                            \
	do {                                                                   \
		struct proto_msg m_;                                           \
		enum proto_err got_ = dec((side), (buf), (len), (nfds), &m_);  \
		if (got_ != (want))                                            \
			print_error("%s:%d: %s (len %zu, nfds %d, side %s): "  \
				    "want %s, got %s\n",                       \
				    __FILE__, __LINE__, (what), (size_t)(len), \
				    (int)(nfds),                               \
				    (side) == PROTO_AT_WORKER ? "worker"       \
							      : "supervisor",  \
				    err_name(want), err_name(got_));           \
		assert_int_equal(got_, (want));                                \
	} while (0)

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (v >> (8 * i)) & 0xff;
}

/* A raw header: type, version, length = PROTO_HDR_SIZE + body. */
static size_t hdr(uint8_t *buf, uint16_t type, uint16_t version, size_t body)
{
	put16(buf, type);
	put16(buf + 2, version);
	put32(buf + 4, (uint32_t)(PROTO_HDR_SIZE + body));
	return PROTO_HDR_SIZE + body;
}

static size_t conn_len(unsigned n)
{
	return PROTO_HDR_SIZE + 4 + n * PROTO_CONN_SIZE;
}

static size_t ids_len(unsigned n)
{
	return PROTO_HDR_SIZE + 8 + n * 8;
}

static enum proto_side receiver(uint16_t type)
{
	return type < 100 ? PROTO_AT_WORKER : PROTO_AT_SUPERVISOR;
}

static enum proto_side sender(uint16_t type)
{
	return type < 100 ? PROTO_AT_SUPERVISOR : PROTO_AT_WORKER;
}

/* Encode into a buffer of exactly want_len bytes, decode, compare. */
static void roundtrip(const struct proto_msg *in, size_t want_len,
		      struct proto_msg *out)
{
	uint8_t *buf = malloc(want_len);
	assert_non_null(buf);
	int n = proto_encode(in, buf, want_len);
	assert_int_equal(n, want_len);
	/* The header says what it is. */
	assert_int_equal(buf[0] | buf[1] << 8, in->type);
	assert_int_equal(buf[2] | buf[3] << 8, PROTO_VERSION);
	assert_int_equal((uint32_t)buf[4] | (uint32_t)buf[5] << 8 |
				 (uint32_t)buf[6] << 16 | (uint32_t)buf[7] << 24,
			 want_len);
	memset(out, 0xa5, sizeof(*out));
	int nfds = proto_nfds(in);
	assert_int_equal(dec(receiver(in->type), buf, (size_t)n, nfds, out),
			 PROTO_OK);
	assert_int_equal(out->type, in->type);
	assert_int_equal(proto_nfds(out), nfds);
	free(buf);
}

static void fill_conn(struct proto_conn *c, uint64_t id, size_t llen,
		      size_t plen, char lch, char pch)
{
	memset(c, 0, sizeof(*c));
	c->id = id;
	memset(c->listener, lch, llen);
	memset(c->peer, pch, plen);
}

static void check_conn(const struct proto_conn *got,
		       const struct proto_conn *want)
{
	assert_true(got->id == want->id);
	assert_string_equal(got->listener, want->listener);
	assert_string_equal(got->peer, want->peer);
}

/* --- round-trips ------------------------------------------------------ */

static void test_rt_conn_one(void **state)
{
	(void)state;
	struct proto_msg in, out;
	memset(&in, 0, sizeof(in));
	in.type = PROTO_CONN;
	in.u.conn.count = 1;
	in.u.conn.conns[0].id = 42;
	strcpy(in.u.conn.conns[0].listener, "web");
	strcpy(in.u.conn.conns[0].peer, "127.0.0.1:54321");
	roundtrip(&in, conn_len(1), &out);
	assert_int_equal(out.u.conn.count, 1);
	check_conn(&out.u.conn.conns[0], &in.u.conn.conns[0]);
}

static void test_rt_conn_max(void **state)
{
	(void)state;
	struct proto_msg in, out;
	memset(&in, 0, sizeof(in));
	in.type = PROTO_CONN;
	in.u.conn.count = PROTO_CONN_MAX;
	for (int i = 0; i < PROTO_CONN_MAX; i++) {
		/* Full-length text: 31 and 63 characters plus the NUL. */
		fill_conn(&in.u.conn.conns[i],
			  i == 0 ? 0 : i == 1 ? UINT64_MAX
					      : 0x0123456789abcdefULL * (uint64_t)i,
			  PROTO_LISTENER_MAX - 1, PROTO_PEER_MAX - 1,
			  (char)('a' + i), (char)('A' + i));
	}
	/* And some short ones in between. */
	strcpy(in.u.conn.conns[5].listener, "x");
	strcpy(in.u.conn.conns[5].peer, "unix");
	in.u.conn.conns[6].listener[0] = '\0';
	strcpy(in.u.conn.conns[6].peer, "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535");
	roundtrip(&in, conn_len(PROTO_CONN_MAX), &out);
	assert_int_equal(out.u.conn.count, PROTO_CONN_MAX);
	assert_int_equal(proto_nfds(&out), PROTO_CONN_MAX);
	for (int i = 0; i < PROTO_CONN_MAX; i++)
		check_conn(&out.u.conn.conns[i], &in.u.conn.conns[i]);
	assert_int_equal(strlen(out.u.conn.conns[0].listener), PROTO_LISTENER_MAX - 1);
	assert_int_equal(strlen(out.u.conn.conns[0].peer), PROTO_PEER_MAX - 1);
}

/* Text longer than its field is cut to the field minus its NUL. */
static void test_rt_conn_overlong_text_cut(void **state)
{
	(void)state;
	struct proto_msg in, out;
	memset(&in, 0, sizeof(in));
	in.type = PROTO_CONN;
	in.u.conn.count = 1;
	/* Not NUL terminated at all inside the struct fields. */
	memset(in.u.conn.conns[0].listener, 'L', PROTO_LISTENER_MAX);
	memset(in.u.conn.conns[0].peer, 'P', PROTO_PEER_MAX);
	roundtrip(&in, conn_len(1), &out);
	char want_l[PROTO_LISTENER_MAX], want_p[PROTO_PEER_MAX];
	memset(want_l, 'L', sizeof(want_l) - 1);
	want_l[sizeof(want_l) - 1] = '\0';
	memset(want_p, 'P', sizeof(want_p) - 1);
	want_p[sizeof(want_p) - 1] = '\0';
	assert_string_equal(out.u.conn.conns[0].listener, want_l);
	assert_string_equal(out.u.conn.conns[0].peer, want_p);
}

static void rt_ids(uint16_t type, uint16_t count)
{
	struct proto_msg in, out;
	memset(&in, 0, sizeof(in));
	in.type = type;
	in.u.ids.count = count;
	for (unsigned i = 0; i < count; i++)
		in.u.ids.ids[i] = i == 0 ? UINT64_MAX
					 : 0x8000000000000001ULL + (uint64_t)i * 0x10101;
	roundtrip(&in, ids_len(count), &out);
	assert_int_equal(out.u.ids.count, count);
	for (unsigned i = 0; i < count; i++)
		assert_true(out.u.ids.ids[i] == in.u.ids.ids[i]);
	assert_int_equal(proto_nfds(&out), 0);
}

static void test_rt_ack_done(void **state)
{
	(void)state;
	rt_ids(PROTO_ACK, 1);
	rt_ids(PROTO_ACK, PROTO_IDS_MAX);
	rt_ids(PROTO_DONE, 1);
	rt_ids(PROTO_DONE, PROTO_IDS_MAX);
}

static void test_rt_ready(void **state)
{
	(void)state;
	const uint32_t caps[] = {0, 1, 1000, UINT32_MAX};
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		struct proto_msg in, out;
		memset(&in, 0, sizeof(in));
		in.type = PROTO_READY;
		in.u.ready.capacity = caps[i];
		roundtrip(&in, PROTO_HDR_SIZE + 8, &out);
		assert_int_equal(out.u.ready.capacity, caps[i]);
	}
}

static void test_rt_heartbeat(void **state)
{
	(void)state;
	const uint32_t v[][2] = {{0, 0}, {3, 100}, {UINT32_MAX, 1}, {7, UINT32_MAX}};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct proto_msg in, out;
		memset(&in, 0, sizeof(in));
		in.type = PROTO_HEARTBEAT;
		in.u.heartbeat.active = v[i][0];
		in.u.heartbeat.capacity = v[i][1];
		roundtrip(&in, PROTO_HDR_SIZE + 8, &out);
		assert_int_equal(out.u.heartbeat.active, v[i][0]);
		assert_int_equal(out.u.heartbeat.capacity, v[i][1]);
	}
}

static void test_rt_drain_status(void **state)
{
	(void)state;
	struct proto_msg in, out;
	memset(&in, 0, sizeof(in));
	in.type = PROTO_DRAIN;
	roundtrip(&in, PROTO_HDR_SIZE, &out);
	in.type = PROTO_STATUS;
	roundtrip(&in, PROTO_HDR_SIZE, &out);
}

/* --- the wire format, byte for byte ---------------------------------- */

static void test_wire_conn(void **state)
{
	(void)state;
	/* CONN, 1 entry: id 0x0102030405060708, "web", "1.2.3.4:5". */
	static const uint8_t want[116] = {
		0x01, 0x00,             /* type 1 (CONN) */
		0x01, 0x00,             /* version 1 */
		0x74, 0x00, 0x00, 0x00, /* length 116 = 8 + 4 + 104 */
		0x01, 0x00,             /* count 1 */
		0x00, 0x00,             /* reserved */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* id */
		'w', 'e', 'b',          /* listener at 20, 32 bytes */
		[52] = '1', '.', '2', '.', '3', '.', '4', ':', '5', /* peer at 52, 64 bytes */
		[115] = 0x00,
	};
	struct proto_msg m;
	memset(&m, 0, sizeof(m));
	m.type = PROTO_CONN;
	m.u.conn.count = 1;
	m.u.conn.conns[0].id = 0x0102030405060708ULL;
	strcpy(m.u.conn.conns[0].listener, "web");
	strcpy(m.u.conn.conns[0].peer, "1.2.3.4:5");
	uint8_t buf[PROTO_MSG_MAX];
	memset(buf, 0xee, sizeof(buf));
	int n = proto_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));

	/* And the hand-written bytes decode to the same message. */
	struct proto_msg out;
	assert_int_equal(dec(PROTO_AT_WORKER, want, sizeof(want), 1, &out), PROTO_OK);
	assert_int_equal(out.type, PROTO_CONN);
	assert_int_equal(out.u.conn.count, 1);
	assert_true(out.u.conn.conns[0].id == 0x0102030405060708ULL);
	assert_string_equal(out.u.conn.conns[0].listener, "web");
	assert_string_equal(out.u.conn.conns[0].peer, "1.2.3.4:5");
}

static void test_wire_ack(void **state)
{
	(void)state;
	/* ACK of ids 0x1122334455667788 and 1. */
	static const uint8_t want[32] = {
		0x65, 0x00,                                     /* type 101 (ACK) */
		0x01, 0x00,                                     /* version 1 */
		0x20, 0x00, 0x00, 0x00,                         /* length 32 */
		0x02, 0x00,                                     /* count 2 */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             /* reserved */
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* id 0 */
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* id 1 */
	};
	struct proto_msg m;
	memset(&m, 0, sizeof(m));
	m.type = PROTO_ACK;
	m.u.ids.count = 2;
	m.u.ids.ids[0] = 0x1122334455667788ULL;
	m.u.ids.ids[1] = 1;
	uint8_t buf[PROTO_MSG_MAX];
	memset(buf, 0xee, sizeof(buf));
	int n = proto_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));

	struct proto_msg out;
	assert_int_equal(dec(PROTO_AT_SUPERVISOR, want, sizeof(want), 0, &out), PROTO_OK);
	assert_int_equal(out.type, PROTO_ACK);
	assert_int_equal(out.u.ids.count, 2);
	assert_true(out.u.ids.ids[0] == 0x1122334455667788ULL);
	assert_true(out.u.ids.ids[1] == 1);
}

static void test_wire_fixed(void **state)
{
	(void)state;
	static const uint8_t ready[16] = {
		0x64, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00, 0x00,
		0x04, 0x03, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00,
	};
	static const uint8_t hb[16] = {
		0x67, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00, 0x00,
		0x05, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
	};
	static const uint8_t drain[8] = {0x02, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00, 0x00};
	static const uint8_t status[8] = {0x03, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00, 0x00};
	uint8_t buf[PROTO_MSG_MAX];
	struct proto_msg m;

	memset(&m, 0, sizeof(m));
	m.type = PROTO_READY;
	m.u.ready.capacity = 0x01020304;
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), 16);
	assert_memory_equal(buf, ready, 16);

	memset(&m, 0, sizeof(m));
	m.type = PROTO_HEARTBEAT;
	m.u.heartbeat.active = 5;
	m.u.heartbeat.capacity = 256;
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), 16);
	assert_memory_equal(buf, hb, 16);

	memset(&m, 0, sizeof(m));
	m.type = PROTO_DRAIN;
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, drain, 8);
	m.type = PROTO_STATUS;
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, status, 8);
}

/* --- proto_encode refusals ------------------------------------------- */

static void test_encode_refuses(void **state)
{
	(void)state;
	uint8_t buf[PROTO_MSG_MAX];
	struct proto_msg m;

	memset(&m, 0, sizeof(m));
	m.type = PROTO_CONN;
	m.u.conn.count = 0;
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), -1);
	m.u.conn.count = PROTO_CONN_MAX + 1;
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), -1);
	m.u.conn.count = UINT16_MAX;
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), -1);

	const uint16_t idt[] = {PROTO_ACK, PROTO_DONE};
	for (int t = 0; t < 2; t++) {
		memset(&m, 0, sizeof(m));
		m.type = idt[t];
		m.u.ids.count = 0;
		assert_int_equal(proto_encode(&m, buf, sizeof(buf)), -1);
		m.u.ids.count = PROTO_IDS_MAX + 1;
		assert_int_equal(proto_encode(&m, buf, sizeof(buf)), -1);
		m.u.ids.count = UINT16_MAX;
		assert_int_equal(proto_encode(&m, buf, sizeof(buf)), -1);
	}

	const uint16_t unknown[] = {0, 4, 50, 99, 104, 150, 199, 200, UINT16_MAX};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		memset(&m, 0, sizeof(m));
		m.type = unknown[i];
		m.u.conn.count = 1; /* whatever the union holds, still refused */
		assert_int_equal(proto_encode(&m, buf, sizeof(buf)), -1);
	}
}

/* Every type into a buffer one byte short (exact heap size: ASan). */
static void test_encode_small_buffer(void **state)
{
	(void)state;
	struct {
		uint16_t type;
		uint16_t count;
		size_t len;
	} cases[] = {
		{PROTO_CONN, 1, conn_len(1)},
		{PROTO_CONN, PROTO_CONN_MAX, conn_len(PROTO_CONN_MAX)},
		{PROTO_ACK, 1, ids_len(1)},
		{PROTO_ACK, PROTO_IDS_MAX, ids_len(PROTO_IDS_MAX)},
		{PROTO_DONE, 3, ids_len(3)},
		{PROTO_READY, 0, 16},
		{PROTO_HEARTBEAT, 0, 16},
		{PROTO_DRAIN, 0, 8},
		{PROTO_STATUS, 0, 8},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct proto_msg m;
		memset(&m, 0, sizeof(m));
		m.type = cases[i].type;
		if (m.type == PROTO_CONN) {
			m.u.conn.count = cases[i].count;
			for (int k = 0; k < cases[i].count; k++)
				fill_conn(&m.u.conn.conns[k], (uint64_t)k,
					  PROTO_LISTENER_MAX - 1,
					  PROTO_PEER_MAX - 1, 'l', 'p');
		} else if (m.type == PROTO_ACK || m.type == PROTO_DONE) {
			m.u.ids.count = cases[i].count;
		}
		size_t len = cases[i].len;
		uint8_t *b = malloc(len);
		assert_non_null(b);
		/* Exact fit works. */
		assert_int_equal(proto_encode(&m, b, len), len);
		/* One short, and much shorter, are refused without writing. */
		memset(b, 0xee, len);
		assert_int_equal(proto_encode(&m, b, len - 1), -1);
		for (size_t k = 0; k < len; k++)
			assert_int_equal(b[k], 0xee);
		assert_int_equal(proto_encode(&m, b, 0), -1);
		assert_int_equal(proto_encode(&m, b, PROTO_HDR_SIZE - 1), -1);
		free(b);
	}
}

/* --- proto_decode: malformed records --------------------------------- */

/* A valid record of each type, as its receiver would accept it. */
static size_t valid(uint16_t type, uint8_t *buf, size_t size, int *nfds)
{
	struct proto_msg m;
	memset(&m, 0, sizeof(m));
	m.type = type;
	switch (type) {
	case PROTO_CONN:
		m.u.conn.count = 2;
		strcpy(m.u.conn.conns[0].listener, "web");
		strcpy(m.u.conn.conns[0].peer, "1.2.3.4:5");
		strcpy(m.u.conn.conns[1].listener, "api");
		strcpy(m.u.conn.conns[1].peer, "unix");
		break;
	case PROTO_ACK:
	case PROTO_DONE:
		m.u.ids.count = 3;
		break;
	case PROTO_READY:
		m.u.ready.capacity = 8;
		break;
	case PROTO_HEARTBEAT:
		m.u.heartbeat.active = 1;
		m.u.heartbeat.capacity = 8;
		break;
	}
	int n = proto_encode(&m, buf, size);
	assert_true(n > 0);
	*nfds = proto_nfds(&m);
	return (size_t)n;
}

static const uint16_t all_types[] = {PROTO_CONN,  PROTO_DRAIN, PROTO_STATUS,
				     PROTO_READY, PROTO_ACK,   PROTO_DONE,
				     PROTO_HEARTBEAT};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

static void test_decode_valid_baseline(void **state)
{
	(void)state;
	uint8_t buf[PROTO_MSG_MAX];
	int nfds;
	for (size_t t = 0; t < NTYPES; t++) {
		size_t len = valid(all_types[t], buf, sizeof(buf), &nfds);
		DECODE_IS(PROTO_OK, receiver(all_types[t]), buf, len, nfds,
			  proto_name(all_types[t]));
	}
}

static void test_decode_short(void **state)
{
	(void)state;
	uint8_t buf[PROTO_MSG_MAX];
	int nfds;
	for (size_t t = 0; t < NTYPES; t++) {
		valid(all_types[t], buf, sizeof(buf), &nfds);
		for (size_t len = 0; len < PROTO_HDR_SIZE; len++)
			for (int s = 0; s < 2; s++)
				DECODE_IS(PROTO_ESHORT, sides[s], buf, len, 0,
					  "shorter than header");
	}
}

static void test_decode_version(void **state)
{
	(void)state;
	uint8_t buf[PROTO_MSG_MAX];
	int nfds;
	const uint16_t bad[] = {0, PROTO_VERSION + 1, 0x0100, UINT16_MAX};
	for (size_t t = 0; t < NTYPES; t++) {
		size_t len = valid(all_types[t], buf, sizeof(buf), &nfds);
		for (size_t v = 0; v < sizeof(bad) / sizeof(bad[0]); v++) {
			put16(buf + 2, bad[v]);
			DECODE_IS(PROTO_EVERSION, receiver(all_types[t]), buf,
				  len, nfds, "wrong version");
		}
	}
}

static void test_decode_length(void **state)
{
	(void)state;
	uint8_t buf[PROTO_MSG_MAX + 16];
	int nfds;
	for (size_t t = 0; t < NTYPES; t++) {
		enum proto_side side = receiver(all_types[t]);
		size_t len = valid(all_types[t], buf, PROTO_MSG_MAX, &nfds);
		memset(buf + len, 0, 16);

		/* Header says more than was received. */
		put32(buf + 4, (uint32_t)len + 1);
		DECODE_IS(PROTO_ELENGTH, side, buf, len, nfds, "header > received");
		put32(buf + 4, UINT32_MAX);
		DECODE_IS(PROTO_ELENGTH, side, buf, len, nfds, "header = 4G-1");
		put32(buf + 4, (uint32_t)len + 0x10000);
		DECODE_IS(PROTO_ELENGTH, side, buf, len, nfds, "header > received by 64K");

		/* Header says less than was received. */
		put32(buf + 4, (uint32_t)len - 1);
		DECODE_IS(PROTO_ELENGTH, side, buf, len, nfds, "header < received");
		put32(buf + 4, 0);
		DECODE_IS(PROTO_ELENGTH, side, buf, len, nfds, "header = 0");
		put32(buf + 4, PROTO_HDR_SIZE);
		if (len != PROTO_HDR_SIZE)
			DECODE_IS(PROTO_ELENGTH, side, buf, len, nfds,
				  "header = header size only");

		/* Correct header, but more or fewer bytes arrived. */
		put32(buf + 4, (uint32_t)len);
		DECODE_IS(PROTO_ELENGTH, side, buf, len + 1, nfds, "received one extra");
		DECODE_IS(PROTO_ELENGTH, side, buf, len + 16, nfds, "received 16 extra");
		if (len > PROTO_HDR_SIZE)
			DECODE_IS(PROTO_ELENGTH, side, buf, len - 1, nfds,
				  "received one short");
		DECODE_IS(PROTO_OK, side, buf, len, nfds, "restored");
	}
}

static void test_decode_unknown_type(void **state)
{
	(void)state;
	uint8_t buf[64];
	const uint16_t unknown[] = {0, 4, 5, 50, 98, 99, 104, 105, 150, 199, 200, 0x100, 0x6400, UINT16_MAX};
	/* With every body size a known type could have. */
	const size_t bodies[] = {0, 8, 16};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++)
			for (int s = 0; s < 2; s++) {
				memset(buf, 0, sizeof(buf));
				buf[PROTO_HDR_SIZE] = 1; /* a count of 1 */
				size_t len = hdr(buf, unknown[i], PROTO_VERSION, bodies[b]);
				DECODE_IS(PROTO_ETYPE, sides[s], buf, len, 0, "unknown type");
			}
}

static void test_decode_wrong_direction(void **state)
{
	(void)state;
	uint8_t buf[PROTO_MSG_MAX];
	int nfds;
	for (size_t t = 0; t < NTYPES; t++) {
		size_t len = valid(all_types[t], buf, sizeof(buf), &nfds);
		/* The sender's own types are never accepted by the sender. */
		DECODE_IS(PROTO_ETYPE, sender(all_types[t]), buf, len, nfds,
			  proto_name(all_types[t]));
		DECODE_IS(PROTO_ETYPE, sender(all_types[t]), buf, len, 0,
			  proto_name(all_types[t]));
	}
}

/* Body too short or too long for every type. */
static void test_decode_size(void **state)
{
	(void)state;
	uint8_t buf[PROTO_MSG_MAX + 256];

	/* DRAIN and STATUS have no body. */
	const uint16_t empty[] = {PROTO_DRAIN, PROTO_STATUS};
	for (int t = 0; t < 2; t++) {
		const size_t bodies[] = {1, 2, 4, 8, 16};
		for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
			memset(buf, 0, sizeof(buf));
			size_t len = hdr(buf, empty[t], PROTO_VERSION, bodies[b]);
			DECODE_IS(PROTO_ESIZE, PROTO_AT_WORKER, buf, len, 0,
				  "DRAIN/STATUS with a body");
		}
	}

	/* READY and HEARTBEAT: exactly 8 bytes. */
	const uint16_t fixed[] = {PROTO_READY, PROTO_HEARTBEAT};
	for (int t = 0; t < 2; t++) {
		const size_t bodies[] = {0, 1, 4, 7, 9, 12, 16};
		for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
			memset(buf, 0, sizeof(buf));
			size_t len = hdr(buf, fixed[t], PROTO_VERSION, bodies[b]);
			DECODE_IS(PROTO_ESIZE, PROTO_AT_SUPERVISOR, buf, len, 0,
				  "READY/HEARTBEAT body not 8");
		}
	}

	/* CONN: 4 + count * PROTO_CONN_SIZE. */
	for (uint16_t count = 1; count <= PROTO_CONN_MAX; count += PROTO_CONN_MAX - 1) {
		const size_t good = 4 + (size_t)count * PROTO_CONN_SIZE;
		const size_t bodies[] = {0, 1, 2, 3, 4, good - 1, good + 1,
					 good - PROTO_CONN_SIZE, good + PROTO_CONN_SIZE,
					 good + 4};
		for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
			memset(buf, 0, sizeof(buf));
			size_t len = hdr(buf, PROTO_CONN, PROTO_VERSION, bodies[b]);
			if (bodies[b] >= 2)
				put16(buf + PROTO_HDR_SIZE, count);
			DECODE_IS(PROTO_ESIZE, PROTO_AT_WORKER, buf, len, count,
				  "CONN body size");
		}
	}

	/* ACK and DONE: 8 + count * 8. */
	const uint16_t idt[] = {PROTO_ACK, PROTO_DONE};
	for (int t = 0; t < 2; t++)
		for (uint16_t count = 1; count <= PROTO_IDS_MAX; count += PROTO_IDS_MAX - 1) {
			const size_t good = 8 + (size_t)count * 8;
			const size_t bodies[] = {0, 1, 2, 3, 7, 8, good - 1, good + 1,
						 good - 8, good + 8, good + 4};
			for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
				if (bodies[b] == good)
					continue;
				memset(buf, 0, sizeof(buf));
				size_t len = hdr(buf, idt[t], PROTO_VERSION, bodies[b]);
				if (bodies[b] >= 2)
					put16(buf + PROTO_HDR_SIZE, count);
				DECODE_IS(PROTO_ESIZE, PROTO_AT_SUPERVISOR, buf, len, 0,
					  "ACK/DONE body size");
			}
		}
}

static void test_decode_count(void **state)
{
	(void)state;
	uint8_t *buf = calloc(1, BIG);
	assert_non_null(buf);

	/* CONN: count 0 (body of just the count), above max, 0xffff. */
	const uint16_t conn_bad[] = {0, PROTO_CONN_MAX + 1, 1000, UINT16_MAX};
	for (size_t i = 0; i < sizeof(conn_bad) / sizeof(conn_bad[0]); i++) {
		uint16_t c = conn_bad[i];
		/* A body the right size for that count... */
		memset(buf, 0, BIG);
		size_t len = hdr(buf, PROTO_CONN, PROTO_VERSION, 4 + (size_t)c * PROTO_CONN_SIZE);
		put16(buf + PROTO_HDR_SIZE, c);
		DECODE_IS(PROTO_ECOUNT, PROTO_AT_WORKER, buf, len, c, "CONN count, sized body");
		DECODE_IS(PROTO_ECOUNT, PROTO_AT_WORKER, buf, len, 0, "CONN count, sized body, no fds");
		/* ...and a maximal body. */
		len = hdr(buf, PROTO_CONN, PROTO_VERSION, 4 + PROTO_CONN_MAX * PROTO_CONN_SIZE);
		DECODE_IS(PROTO_ECOUNT, PROTO_AT_WORKER, buf, len, PROTO_CONN_MAX, "CONN count, max body");
	}

	const uint16_t ids_bad[] = {0, PROTO_IDS_MAX + 1, 1000, UINT16_MAX};
	const uint16_t idt[] = {PROTO_ACK, PROTO_DONE};
	for (int t = 0; t < 2; t++)
		for (size_t i = 0; i < sizeof(ids_bad) / sizeof(ids_bad[0]); i++) {
			uint16_t c = ids_bad[i];
			memset(buf, 0, BIG);
			size_t len = hdr(buf, idt[t], PROTO_VERSION, 8 + (size_t)c * 8);
			put16(buf + PROTO_HDR_SIZE, c);
			DECODE_IS(PROTO_ECOUNT, PROTO_AT_SUPERVISOR, buf, len, 0, "ACK/DONE count, sized body");
			len = hdr(buf, idt[t], PROTO_VERSION, 8 + PROTO_IDS_MAX * 8);
			DECODE_IS(PROTO_ECOUNT, PROTO_AT_SUPERVISOR, buf, len, 0, "ACK/DONE count, max body");
		}
	free(buf);
}

static void test_decode_reserved(void **state)
{
	(void)state;
	uint8_t buf[PROTO_MSG_MAX];
	int nfds;
	size_t len;

	/* CONN: bytes 2..3 of the body. */
	for (int k = 2; k < 4; k++) {
		len = valid(PROTO_CONN, buf, sizeof(buf), &nfds);
		buf[PROTO_HDR_SIZE + k] = 0x01;
		DECODE_IS(PROTO_EFIELD, PROTO_AT_WORKER, buf, len, nfds, "CONN reserved");
		buf[PROTO_HDR_SIZE + k] = 0x80;
		DECODE_IS(PROTO_EFIELD, PROTO_AT_WORKER, buf, len, nfds, "CONN reserved");
	}
	/* ACK/DONE: bytes 2..7. */
	const uint16_t idt[] = {PROTO_ACK, PROTO_DONE};
	for (int t = 0; t < 2; t++)
		for (int k = 2; k < 8; k++) {
			len = valid(idt[t], buf, sizeof(buf), &nfds);
			buf[PROTO_HDR_SIZE + k] = 0xff;
			DECODE_IS(PROTO_EFIELD, PROTO_AT_SUPERVISOR, buf, len, 0, "ACK/DONE reserved");
		}
	/* READY: bytes 4..7. */
	for (int k = 4; k < 8; k++) {
		len = valid(PROTO_READY, buf, sizeof(buf), &nfds);
		buf[PROTO_HDR_SIZE + k] = 0x01;
		DECODE_IS(PROTO_EFIELD, PROTO_AT_SUPERVISOR, buf, len, 0, "READY reserved");
	}
}

static void test_decode_text_fields(void **state)
{
	(void)state;
	uint8_t buf[PROTO_MSG_MAX];
	int nfds;
	size_t len;

	for (int entry = 0; entry < 2; entry++) {
		uint8_t *e = buf + PROTO_HDR_SIZE + 4 + entry * PROTO_CONN_SIZE;
		uint8_t *lst = e + 8, *peer = e + 8 + PROTO_LISTENER_MAX;

		/* No NUL at all. */
		len = valid(PROTO_CONN, buf, sizeof(buf), &nfds);
		memset(lst, 'a', PROTO_LISTENER_MAX);
		DECODE_IS(PROTO_EFIELD, PROTO_AT_WORKER, buf, len, nfds, "listener without NUL");
		len = valid(PROTO_CONN, buf, sizeof(buf), &nfds);
		memset(peer, 'b', PROTO_PEER_MAX);
		DECODE_IS(PROTO_EFIELD, PROTO_AT_WORKER, buf, len, nfds, "peer without NUL");

		/* Garbage after the NUL: just after it, and in the last byte. */
		len = valid(PROTO_CONN, buf, sizeof(buf), &nfds);
		lst[4] = 'x'; /* "web\0x" or "api\0x" */
		DECODE_IS(PROTO_EFIELD, PROTO_AT_WORKER, buf, len, nfds, "listener garbage after NUL");
		len = valid(PROTO_CONN, buf, sizeof(buf), &nfds);
		lst[PROTO_LISTENER_MAX - 1] = 1;
		DECODE_IS(PROTO_EFIELD, PROTO_AT_WORKER, buf, len, nfds, "listener last byte");
		len = valid(PROTO_CONN, buf, sizeof(buf), &nfds);
		peer[strlen((char *)peer) + 1] = 'x';
		DECODE_IS(PROTO_EFIELD, PROTO_AT_WORKER, buf, len, nfds, "peer garbage after NUL");
		len = valid(PROTO_CONN, buf, sizeof(buf), &nfds);
		peer[PROTO_PEER_MAX - 1] = 0xff;
		DECODE_IS(PROTO_EFIELD, PROTO_AT_WORKER, buf, len, nfds, "peer last byte");

		/* Full-length text with its NUL in the last byte is fine. */
		len = valid(PROTO_CONN, buf, sizeof(buf), &nfds);
		memset(lst, 'a', PROTO_LISTENER_MAX - 1);
		memset(peer, 'b', PROTO_PEER_MAX - 1);
		DECODE_IS(PROTO_OK, PROTO_AT_WORKER, buf, len, nfds, "full-length text");
	}

	/* The last entry of a maximal CONN. */
	struct proto_msg m;
	memset(&m, 0, sizeof(m));
	m.type = PROTO_CONN;
	m.u.conn.count = PROTO_CONN_MAX;
	len = (size_t)proto_encode(&m, buf, sizeof(buf));
	assert_int_equal(len, conn_len(PROTO_CONN_MAX));
	DECODE_IS(PROTO_OK, PROTO_AT_WORKER, buf, len, PROTO_CONN_MAX, "empty text");
	buf[len - 1] = 'z';
	DECODE_IS(PROTO_EFIELD, PROTO_AT_WORKER, buf, len, PROTO_CONN_MAX, "last peer, last byte");
}

static void test_decode_nfds(void **state)
{
	(void)state;
	uint8_t buf[PROTO_MSG_MAX];
	struct proto_msg m;
	int nfds;
	size_t len;

	memset(&m, 0, sizeof(m));
	m.type = PROTO_CONN;
	for (uint16_t c = 1; c <= PROTO_CONN_MAX; c += PROTO_CONN_MAX - 1) {
		m.u.conn.count = c;
		len = (size_t)proto_encode(&m, buf, sizeof(buf));
		DECODE_IS(PROTO_OK, PROTO_AT_WORKER, buf, len, c, "CONN exact fds");
		DECODE_IS(PROTO_EFDS, PROTO_AT_WORKER, buf, len, 0, "CONN no fds");
		DECODE_IS(PROTO_EFDS, PROTO_AT_WORKER, buf, len, c - 1, "CONN one fd short");
		DECODE_IS(PROTO_EFDS, PROTO_AT_WORKER, buf, len, c + 1, "CONN one fd extra");
		DECODE_IS(PROTO_EFDS, PROTO_AT_WORKER, buf, len, -1, "CONN negative fds");
	}

	/* Every other type carries none. */
	for (size_t t = 0; t < NTYPES; t++) {
		if (all_types[t] == PROTO_CONN)
			continue;
		len = valid(all_types[t], buf, sizeof(buf), &nfds);
		assert_int_equal(nfds, 0);
		DECODE_IS(PROTO_EFDS, receiver(all_types[t]), buf, len, 1,
			  proto_name(all_types[t]));
		DECODE_IS(PROTO_EFDS, receiver(all_types[t]), buf, len, 3,
			  proto_name(all_types[t]));
		DECODE_IS(PROTO_EFDS, receiver(all_types[t]), buf, len, -1,
			  proto_name(all_types[t]));
	}
	/* An ACK of 16 ids with 16 fds (looks like a CONN's fd count). */
	memset(&m, 0, sizeof(m));
	m.type = PROTO_ACK;
	m.u.ids.count = PROTO_CONN_MAX;
	len = (size_t)proto_encode(&m, buf, sizeof(buf));
	DECODE_IS(PROTO_EFDS, PROTO_AT_SUPERVISOR, buf, len, PROTO_CONN_MAX, "ACK with fds");
}

/* --- names ------------------------------------------------------------ */

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(proto_name(PROTO_CONN), "CONN");
	assert_string_equal(proto_name(PROTO_DRAIN), "DRAIN");
	assert_string_equal(proto_name(PROTO_STATUS), "STATUS");
	assert_string_equal(proto_name(PROTO_READY), "READY");
	assert_string_equal(proto_name(PROTO_ACK), "ACK");
	assert_string_equal(proto_name(PROTO_DONE), "DONE");
	assert_string_equal(proto_name(PROTO_HEARTBEAT), "HEARTBEAT");
	const uint16_t unknown[] = {0, 4, 99, 104, 200, UINT16_MAX};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		const char *n = proto_name(unknown[i]);
		assert_non_null(n);
		assert_string_equal(n, "UNKNOWN");
	}
}

static void test_strerror(void **state)
{
	(void)state;
	const enum proto_err all[] = {PROTO_OK,    PROTO_ESHORT, PROTO_EVERSION,
				      PROTO_ELENGTH, PROTO_ETYPE, PROTO_ESIZE,
				      PROTO_ECOUNT, PROTO_EFIELD, PROTO_EFDS,
				      PROTO_ETRUNC};
	const size_t n = sizeof(all) / sizeof(all[0]);
	assert_int_equal(PROTO_ETRUNC, n - 1); /* every value listed */
	for (size_t i = 0; i < n; i++) {
		const char *s = proto_strerror(all[i]);
		assert_non_null(s);
		assert_true(s[0] != '\0');
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(s, proto_strerror(all[j]));
	}
	const char *u = proto_strerror((enum proto_err)(PROTO_ETRUNC + 1));
	assert_non_null(u);
	assert_true(u[0] != '\0');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rt_conn_one),
		cmocka_unit_test(test_rt_conn_max),
		cmocka_unit_test(test_rt_conn_overlong_text_cut),
		cmocka_unit_test(test_rt_ack_done),
		cmocka_unit_test(test_rt_ready),
		cmocka_unit_test(test_rt_heartbeat),
		cmocka_unit_test(test_rt_drain_status),
		cmocka_unit_test(test_wire_conn),
		cmocka_unit_test(test_wire_ack),
		cmocka_unit_test(test_wire_fixed),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_encode_small_buffer),
		cmocka_unit_test(test_decode_valid_baseline),
		cmocka_unit_test(test_decode_short),
		cmocka_unit_test(test_decode_version),
		cmocka_unit_test(test_decode_length),
		cmocka_unit_test(test_decode_unknown_type),
		cmocka_unit_test(test_decode_wrong_direction),
		cmocka_unit_test(test_decode_size),
		cmocka_unit_test(test_decode_count),
		cmocka_unit_test(test_decode_reserved),
		cmocka_unit_test(test_decode_text_fields),
		cmocka_unit_test(test_decode_nfds),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
