package baton

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The byte examples of PROTOCOL.md §4.8.
func TestEncodeProtocolExamples(t *testing.T) {
	if got, want := encodePair(typeReady, 64, 0), unhex(t, "64 00 01 00 10 00 00 00 40 00 00 00 00 00 00 00"); !bytes.Equal(got, want) {
		t.Errorf("READY 64: % x, want % x", got, want)
	}
	want := unhex(t, "65 00 01 00 20 00 00 00 02 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00 08 00 00 00 00 00 00 00")
	if got := encodeIDs(typeAck, []uint64{7, 8}); !bytes.Equal(got, want) {
		t.Errorf("ACK 7 8: % x, want % x", got, want)
	}
	if got, want := encodePair(typeHeartbeat, 3, 64), unhex(t, "67000100 10000000 03000000 40000000"); !bytes.Equal(got, want) {
		t.Errorf("HEARTBEAT: % x, want % x", got, want)
	}
	if got := len(encodeIDs(typeDone, make([]uint64, idsMax))); got != 1040 {
		t.Errorf("DONE of 128: %d bytes, want 1040", got)
	}
}

// connMsg builds a CONN; count < 0 means len(entries).
func connMsg(count int, reserved uint16, entries ...entryBytes) []byte {
	if count < 0 {
		count = len(entries)
	}
	body := make([]byte, 4)
	binary.LittleEndian.PutUint16(body[0:], uint16(count))
	binary.LittleEndian.PutUint16(body[2:], reserved)
	for _, e := range entries {
		b := make([]byte, connEntrySize)
		binary.LittleEndian.PutUint64(b, e.id)
		copy(b[8:8+listenerField], e.listener)
		copy(b[8+listenerField:], e.peer)
		body = append(body, b...)
	}
	return encode(typeConn, body)
}

type entryBytes struct {
	id             uint64
	listener, peer string
}

func TestDecodeConn(t *testing.T) {
	max := strings.Repeat("l", listenerField-1)
	msg := connMsg(-1, 0, entryBytes{7, "v4", "127.0.0.1:5555"}, entryBytes{8, max, "[::1]:1"})
	typ, entries, err := decode(msg, 2)
	if err != nil || typ != typeConn {
		t.Fatal(typ, err)
	}
	want := []entry{{7, "v4", "127.0.0.1:5555"}, {8, max, "[::1]:1"}}
	if len(entries) != 2 || entries[0] != want[0] || entries[1] != want[1] {
		t.Fatalf("%+v", entries)
	}
	for _, typ := range []uint16{typeDrain, typeStatus} {
		if got, _, err := decode(encode(typ, nil), 0); err != nil || got != typ {
			t.Errorf("type %d: %d %v", typ, got, err)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	ok := entryBytes{9, "v4", "1.2.3.4:5"}
	withVersion := func(m []byte, v uint16) []byte { binary.LittleEndian.PutUint16(m[2:], v); return m }
	withLength := func(m []byte, n uint32) []byte { binary.LittleEndian.PutUint32(m[4:], n); return m }
	many := make([]entryBytes, 17)
	for i := range many {
		many[i] = ok
	}
	cases := []struct {
		name string
		msg  []byte
		nfds int
		want string
	}{
		{"empty with fds", nil, 1, "empty record"},
		{"short", []byte{3, 0, 1, 0}, 0, "short record"},
		{"version 0", withVersion(encode(typeStatus, nil), 0), 0, "version 0"},
		{"version 2", withVersion(encode(typeStatus, nil), 2), 0, "version 2"},
		{"length > received", withLength(encode(typeStatus, nil), 9), 0, "length field 9"},
		{"length < received", withLength(encode(typeStatus, make([]byte, 4)), 8), 0, "length field 8"},
		{"STATUS with a body", encode(typeStatus, make([]byte, 4)), 0, "type 3 with 12 bytes"},
		{"DRAIN with an fd", encode(typeDrain, nil), 1, "type 2 with 8 bytes and 1 fds"},
		{"a worker type", encodePair(typeReady, 0, 0), 0, "unexpected message type 100"},
		{"HEARTBEAT", encodePair(typeHeartbeat, 0, 0), 0, "unexpected message type 103"},
		{"unknown type", encode(99, nil), 0, "unexpected message type 99"},
		{"type 0", encode(0, nil), 0, "unexpected message type 0"},
		{"CONN header only", encode(typeConn, nil), 0, "CONN of 8 bytes"},
		{"CONN count 0", connMsg(0, 0), 0, "CONN count 0"},
		{"CONN count 17", connMsg(-1, 0, many...), 17, "CONN count 17"},
		{"CONN reserved", connMsg(-1, 1, ok), 1, "reserved"},
		{"CONN count 2, one entry", connMsg(2, 0, ok), 1, "CONN of 2 with 116 bytes"},
		{"CONN a byte short", connMsg(-1, 0, ok)[:115], 1, "length field 116"},
		{"CONN too few fds", connMsg(-1, 0, ok, ok), 1, "CONN of 2 with 1 fds"},
		{"CONN too many fds", connMsg(-1, 0, ok), 2, "CONN of 1 with 2 fds"},
		{"CONN no fds", connMsg(-1, 0, ok), 0, "CONN of 1 with 0 fds"},
		{"listener without NUL", connMsg(-1, 0, entryBytes{9, strings.Repeat("x", listenerField), "p"}), 1, "entry 0"},
		{"peer without NUL", connMsg(-1, 0, entryBytes{9, "v4", strings.Repeat("p", peerField)}), 1, "entry 0"},
		{"text after the NUL", connMsg(-1, 0, ok, entryBytes{9, "v4", "1.2.3.4\x00junk"}), 2, "entry 1"},
	}
	for _, c := range cases {
		_, entries, err := decode(c.msg, c.nfds)
		pe, ok := err.(*ProtocolError)
		if !ok || entries != nil || !strings.Contains(pe.Reason, c.want) {
			t.Errorf("%s: %v %v, want a protocol error with %q", c.name, entries, err, c.want)
		}
	}
}

func TestFDCapacity(t *testing.T) {
	if got := fdCapacity(64); got != 64 {
		t.Errorf("fdCapacity(64) = %d", got)
	}
	if got := fdCapacity(0); got == 0 {
		t.Errorf("fdCapacity(0) = 0")
	}
}
