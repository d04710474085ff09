/*
 * The worker protocol: every message that crosses the SOCK_SEQPACKET channel
 * between batond and a worker.  worker/PROTOCOL.md is the prose version of
 * this header; keep the two in step.
 *
 * Every message is one SEQPACKET record: an 8-byte header followed by a body
 * whose size is fixed by the type (or, for the batched types, by a count in
 * the body).  All integers are little-endian.  A receiver checks the exact
 * size of every message; anything else is a protocol error.
 */
#ifndef BATON_PROTO_H
#define BATON_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1

#define PROTO_HDR_SIZE 8
#define PROTO_LISTENER_MAX 32 /* listener name field, NUL padded */
#define PROTO_PEER_MAX 64     /* peer address text field, NUL padded */
#define PROTO_CONN_SIZE (8 + PROTO_LISTENER_MAX + PROTO_PEER_MAX)
#define PROTO_CONN_MAX 16 /* connections (and fds) in one CONN message */
#define PROTO_IDS_MAX 128 /* ids in one ACK or DONE message */
#define PROTO_MSG_MAX (PROTO_HDR_SIZE + 4 + PROTO_CONN_MAX * PROTO_CONN_SIZE)

/* Supervisor -> worker: 1..99.  Worker -> supervisor: 100..199. */
enum proto_type {
	PROTO_CONN = 1,        /* connections, one fd each in SCM_RIGHTS */
	PROTO_DRAIN = 2,       /* take no more, finish, exit */
	PROTO_STATUS = 3,      /* please send a HEARTBEAT now */
	PROTO_READY = 100,     /* ready, with capacity */
	PROTO_ACK = 101,       /* connection ids received */
	PROTO_DONE = 102,      /* connection ids finished */
	PROTO_HEARTBEAT = 103, /* liveness and load */
};

struct proto_conn {
	uint64_t id;
	char listener[PROTO_LISTENER_MAX]; /* always NUL terminated after decode */
	char peer[PROTO_PEER_MAX];         /* "1.2.3.4:5", "[::1]:5", "unix" */
};

struct proto_msg {
	uint16_t type;
	union {
		struct {
			uint16_t count;
			struct proto_conn conns[PROTO_CONN_MAX];
		} conn;
		struct {
			uint32_t capacity;
		} ready;
		struct {
			uint16_t count;
			uint64_t ids[PROTO_IDS_MAX];
		} ids; /* ACK and DONE */
		struct {
			uint32_t active;
			uint32_t capacity;
		} heartbeat;
	} u;
};

enum proto_err {
	PROTO_OK = 0,
	PROTO_ESHORT,   /* shorter than the header */
	PROTO_EVERSION, /* version is not PROTO_VERSION */
	PROTO_ELENGTH,  /* header length does not match the bytes received */
	PROTO_ETYPE,    /* unknown type, or a type the receiver never accepts */
	PROTO_ESIZE,    /* body size wrong for the type and count */
	PROTO_ECOUNT,   /* count is 0 or above the type's maximum */
	PROTO_EFIELD,   /* a text field is not NUL terminated / padded */
	PROTO_EFDS,     /* number of fds does not match the message */
	PROTO_ETRUNC,   /* the kernel truncated the message or its fds */
};

const char *proto_name(uint16_t type);
const char *proto_strerror(enum proto_err err);

/*
 * Encode msg into buf (at least PROTO_MSG_MAX bytes).  Returns the length,
 * or -1 if the message is invalid (bad type or count).
 */
int proto_encode(const struct proto_msg *msg, uint8_t *buf, size_t size);

/* Who is decoding: each side accepts only the other side's types. */
enum proto_side {
	PROTO_AT_WORKER,     /* accepts 1..99 */
	PROTO_AT_SUPERVISOR, /* accepts 100..199 */
};

/*
 * Decode len bytes received with nfds descriptors.  The fd count is part of
 * the message: a CONN must carry exactly count fds, everything else none.
 */
enum proto_err proto_decode(enum proto_side side, const uint8_t *buf,
			    size_t len, int nfds, struct proto_msg *msg);

/* How many fds a decoded message carries. */
int proto_nfds(const struct proto_msg *msg);

#endif
