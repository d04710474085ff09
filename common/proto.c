#include "proto.h"

#include <string.h>

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

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (v >> (8 * i)) & 0xff;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

const char *proto_name(uint16_t type)
{
	switch (type) {
	case PROTO_CONN:
		return "CONN";
	case PROTO_DRAIN:
		return "DRAIN";
	case PROTO_STATUS:
		return "STATUS";
	case PROTO_READY:
		return "READY";
	case PROTO_ACK:
		return "ACK";
	case PROTO_DONE:
		return "DONE";
	case PROTO_HEARTBEAT:
		return "HEARTBEAT";
	}
	return "UNKNOWN";
}

const char *proto_strerror(enum proto_err err)
{
	switch (err) {
	case PROTO_OK:
		return "ok";
	case PROTO_ESHORT:
		return "message shorter than header";
	case PROTO_EVERSION:
		return "unsupported protocol version";
	case PROTO_ELENGTH:
		return "header length does not match message size";
	case PROTO_ETYPE:
		return "unknown or unexpected message type";
	case PROTO_ESIZE:
		return "wrong body size for message type";
	case PROTO_ECOUNT:
		return "count out of range";
	case PROTO_EFIELD:
		return "malformed field";
	case PROTO_EFDS:
		return "fd count does not match message";
	case PROTO_ETRUNC:
		return "message or fds truncated";
	}
	return "unknown error";
}

int proto_nfds(const struct proto_msg *msg)
{
	return msg->type == PROTO_CONN ? msg->u.conn.count : 0;
}

/* Copy a string into a fixed NUL-padded field; longer strings are cut. */
static void put_text(uint8_t *p, size_t field, const char *s)
{
	size_t n = strnlen(s, field - 1);
	memcpy(p, s, n);
	memset(p + n, 0, field - n);
}

/* A text field must hold a NUL and nothing but NULs after it. */
static int get_text(char *dst, const uint8_t *p, size_t field)
{
	size_t n = strnlen((const char *)p, field);
	if (n == field)
		return -1;
	for (size_t i = n; i < field; i++)
		if (p[i] != 0)
			return -1;
	memcpy(dst, p, n + 1);
	return 0;
}

static size_t body_size(uint16_t type, uint16_t count)
{
	switch (type) {
	case PROTO_CONN:
		return 4 + (size_t)count * PROTO_CONN_SIZE;
	case PROTO_ACK:
	case PROTO_DONE:
		return 8 + (size_t)count * 8;
	case PROTO_READY:
	case PROTO_HEARTBEAT:
		return 8;
	default:
		return 0;
	}
}

int proto_encode(const struct proto_msg *msg, uint8_t *buf, size_t size)
{
	uint16_t count = 0;
	uint8_t *b = buf + PROTO_HDR_SIZE;

	switch (msg->type) {
	case PROTO_CONN:
		count = msg->u.conn.count;
		if (count == 0 || count > PROTO_CONN_MAX)
			return -1;
		break;
	case PROTO_ACK:
	case PROTO_DONE:
		count = msg->u.ids.count;
		if (count == 0 || count > PROTO_IDS_MAX)
			return -1;
		break;
	case PROTO_DRAIN:
	case PROTO_STATUS:
	case PROTO_READY:
	case PROTO_HEARTBEAT:
		break;
	default:
		return -1;
	}

	size_t len = PROTO_HDR_SIZE + body_size(msg->type, count);
	if (len > size)
		return -1;
	put16(buf, msg->type);
	put16(buf + 2, PROTO_VERSION);
	put32(buf + 4, (uint32_t)len);

	switch (msg->type) {
	case PROTO_CONN:
		put16(b, count);
		put16(b + 2, 0);
		b += 4;
		for (uint16_t i = 0; i < count; i++) {
			const struct proto_conn *c = &msg->u.conn.conns[i];
			put64(b, c->id);
			put_text(b + 8, PROTO_LISTENER_MAX, c->listener);
			put_text(b + 8 + PROTO_LISTENER_MAX, PROTO_PEER_MAX,
				 c->peer);
			b += PROTO_CONN_SIZE;
		}
		break;
	case PROTO_ACK:
	case PROTO_DONE:
		put16(b, count);
		memset(b + 2, 0, 6);
		for (uint16_t i = 0; i < count; i++)
			put64(b + 8 + 8 * i, msg->u.ids.ids[i]);
		break;
	case PROTO_READY:
		put32(b, msg->u.ready.capacity);
		put32(b + 4, 0);
		break;
	case PROTO_HEARTBEAT:
		put32(b, msg->u.heartbeat.active);
		put32(b + 4, msg->u.heartbeat.capacity);
		break;
	}
	return (int)len;
}

static int zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

enum proto_err proto_decode(enum proto_side side, const uint8_t *buf,
			    size_t len, int nfds, struct proto_msg *msg)
{
	if (len < PROTO_HDR_SIZE)
		return PROTO_ESHORT;
	uint16_t type = get16(buf);
	if (get16(buf + 2) != PROTO_VERSION)
		return PROTO_EVERSION;
	if (get32(buf + 4) != len)
		return PROTO_ELENGTH;

	int known = side == PROTO_AT_WORKER
			    ? (type == PROTO_CONN || type == PROTO_DRAIN ||
			       type == PROTO_STATUS)
			    : (type == PROTO_READY || type == PROTO_ACK ||
			       type == PROTO_DONE || type == PROTO_HEARTBEAT);
	if (!known)
		return PROTO_ETYPE;

	const uint8_t *b = buf + PROTO_HDR_SIZE;
	size_t blen = len - PROTO_HDR_SIZE;
	uint16_t count = 0, max = 0;
	if (type == PROTO_CONN || type == PROTO_ACK || type == PROTO_DONE) {
		if (blen < 2)
			return PROTO_ESIZE;
		count = get16(b);
		max = type == PROTO_CONN ? PROTO_CONN_MAX : PROTO_IDS_MAX;
		if (count == 0 || count > max)
			return PROTO_ECOUNT;
	}
	if (blen != body_size(type, count))
		return PROTO_ESIZE;
	if (nfds != (type == PROTO_CONN ? count : 0))
		return PROTO_EFDS;

	memset(msg, 0, sizeof(*msg));
	msg->type = type;
	switch (type) {
	case PROTO_CONN:
		if (!zero(b + 2, 2))
			return PROTO_EFIELD;
		msg->u.conn.count = count;
		b += 4;
		for (uint16_t i = 0; i < count; i++) {
			struct proto_conn *c = &msg->u.conn.conns[i];
			c->id = get64(b);
			if (get_text(c->listener, b + 8, PROTO_LISTENER_MAX) ||
			    get_text(c->peer, b + 8 + PROTO_LISTENER_MAX,
				     PROTO_PEER_MAX))
				return PROTO_EFIELD;
			b += PROTO_CONN_SIZE;
		}
		break;
	case PROTO_ACK:
	case PROTO_DONE:
		if (!zero(b + 2, 6))
			return PROTO_EFIELD;
		msg->u.ids.count = count;
		for (uint16_t i = 0; i < count; i++)
			msg->u.ids.ids[i] = get64(b + 8 + 8 * i);
		break;
	case PROTO_READY:
		if (!zero(b + 4, 4))
			return PROTO_EFIELD;
		msg->u.ready.capacity = get32(b);
		break;
	case PROTO_HEARTBEAT:
		msg->u.heartbeat.active = get32(b);
		msg->u.heartbeat.capacity = get32(b + 4);
		break;
	}
	return PROTO_OK;
}
