package baton

// The wire format of worker/PROTOCOL.md (§2 transport, §3 header, §4
// messages). Every integer on the wire is little-endian.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"
)

// Message types (§3): 1..99 go from batond to the worker, 100..199 back.
const (
	typeConn      = 1   // batond → worker: connections, with their fds
	typeDrain     = 2   // batond → worker: take no more work, finish, exit
	typeStatus    = 3   // batond → worker: answer with a HEARTBEAT now
	typeReady     = 100 // worker → batond: once, when set up
	typeAck       = 101 // worker → batond: these connections are mine
	typeDone      = 102 // worker → batond: these connections are finished
	typeHeartbeat = 103 // worker → batond: alive, with the load
)

// Sizes (§3, §4).
const (
	protoVersion  = 1
	headerSize    = 8   // u16 type, u16 version, u32 length of the whole record
	connFixed     = 12  // CONN: header, u16 count, u16 reserved
	connEntrySize = 104 // CONN entry: u64 id, 32-byte listener, 64-byte peer
	connMax       = 16  // a CONN carries 1..16 connections, so at most 16 fds
	idsMax        = 128 // an ACK or DONE carries 1..128 ids
	listenerField = 32
	peerField     = 64
	// The largest message is a CONN of 16, 12 + 104*16 = 1676 bytes; a
	// bigger buffer is fine, a smaller one would truncate (MSG_TRUNC).
	recvBufSize = 4096
)

// ProtocolError reports a malformed message from batond (PROTOCOL.md §6):
// a truncated record, a bad header, an unknown type or a body or fd count
// that does not match. The worker has closed the fds that came with it and
// acknowledged nothing in it; it reads the channel no more, so it takes no
// more work, and it finishes the connections it has.
type ProtocolError struct {
	Reason string // what was wrong, for the log
}

func (e *ProtocolError) Error() string { return "baton: protocol error: " + e.Reason }

func protocolErrorf(format string, args ...any) error {
	return &ProtocolError{Reason: fmt.Sprintf(format, args...)}
}

// errEOF is the channel's end as receive reports it: batond closed its end
// (§5.6). Worker.Err reports it as ErrSupervisorGone.
var errEOF = errors.New("channel closed")

// entry is one connection of a CONN message (§4.1).
type entry struct {
	id       uint64
	listener string // the [listener:NAME] that accepted it
	peer     string // "1.2.3.4:5678", "[::1]:5678" or "unix"
}

// encode builds one worker record: the header, then body (§3).
func encode(typ uint16, body []byte) []byte {
	msg := make([]byte, headerSize+len(body))
	binary.LittleEndian.PutUint16(msg[0:], typ)
	binary.LittleEndian.PutUint16(msg[2:], protoVersion)
	binary.LittleEndian.PutUint32(msg[4:], uint32(len(msg)))
	copy(msg[headerSize:], body)
	return msg
}

// encodeIDs builds an ACK or a DONE of 1..128 ids: u16 count, 6 zero
// bytes of padding, then the ids as u64 (§4.5, §4.6).
func encodeIDs(typ uint16, ids []uint64) []byte {
	if len(ids) < 1 || len(ids) > idsMax {
		panic("baton: encodeIDs: bad count") // a bug here, never an input
	}
	body := make([]byte, 8+8*len(ids))
	binary.LittleEndian.PutUint16(body[0:], uint16(len(ids)))
	for i, id := range ids {
		binary.LittleEndian.PutUint64(body[8+8*i:], id)
	}
	return encode(typ, body)
}

// encodePair builds READY {capacity, reserved 0} or HEARTBEAT {active,
// capacity}: two u32 (§4.4, §4.7).
func encodePair(typ uint16, a, b uint32) []byte {
	body := make([]byte, 8)
	binary.LittleEndian.PutUint32(body[0:], a)
	binary.LittleEndian.PutUint32(body[4:], b)
	return encode(typ, body)
}

// decode checks a record from batond exactly as PROTOCOL.md §3, §4.1 and
// §6 say, given how many fds came with it, and returns its type and, for a
// CONN, its entries (the i-th fd belongs to the i-th entry). Any error is
// a *ProtocolError.
func decode(rec []byte, nfds int) (typ uint16, entries []entry, err error) {
	if len(rec) == 0 {
		// A 0-byte record without fds is the channel's end and never
		// gets here; batond never sends an empty record (§2).
		return 0, nil, protocolErrorf("empty record with %d fds", nfds)
	}
	if len(rec) < headerSize {
		return 0, nil, protocolErrorf("short record (%d bytes)", len(rec))
	}
	typ = binary.LittleEndian.Uint16(rec[0:])
	version := binary.LittleEndian.Uint16(rec[2:])
	length := binary.LittleEndian.Uint32(rec[4:])
	switch {
	case version != protoVersion:
		return 0, nil, protocolErrorf("version %d (type %d), want %d", version, typ, protoVersion)
	case length != uint32(len(rec)):
		return 0, nil, protocolErrorf("length field %d, %d bytes received (type %d)", length, len(rec), typ)
	}
	switch typ {
	case typeConn:
		entries, err = decodeConn(rec, nfds)
		return typ, entries, err
	case typeDrain, typeStatus:
		if len(rec) != headerSize || nfds != 0 {
			return 0, nil, protocolErrorf("type %d with %d bytes and %d fds", typ, len(rec), nfds)
		}
		return typ, nil, nil
	default: // one of the worker's own types (100..199), or unknown (§3)
		return 0, nil, protocolErrorf("unexpected message type %d", typ)
	}
}

// decodeConn checks a CONN the way batond's own decoder does (§4.1).
func decodeConn(rec []byte, nfds int) ([]entry, error) {
	if len(rec) < connFixed {
		return nil, protocolErrorf("CONN of %d bytes", len(rec))
	}
	count := int(binary.LittleEndian.Uint16(rec[8:]))
	reserved := binary.LittleEndian.Uint16(rec[10:])
	switch {
	case count < 1 || count > connMax:
		return nil, protocolErrorf("CONN count %d", count)
	case reserved != 0:
		return nil, protocolErrorf("CONN reserved field %#x", reserved)
	case len(rec) != connFixed+connEntrySize*count:
		return nil, protocolErrorf("CONN of %d with %d bytes", count, len(rec))
	case nfds != count:
		return nil, protocolErrorf("CONN of %d with %d fds", count, nfds)
	}
	entries := make([]entry, count)
	for i := range entries {
		e := rec[connFixed+connEntrySize*i : connFixed+connEntrySize*(i+1)]
		listener, ok1 := text(e[8 : 8+listenerField])
		peer, ok2 := text(e[8+listenerField:])
		if !ok1 || !ok2 {
			return nil, protocolErrorf("CONN entry %d: text field not NUL-padded", i)
		}
		entries[i] = entry{id: binary.LittleEndian.Uint64(e[0:]), listener: listener, peer: peer}
	}
	return entries, nil
}

// text reads a NUL-padded field: text, at least one NUL, only NULs after.
func text(field []byte) (string, bool) {
	n := bytes.IndexByte(field, 0)
	if n < 0 || len(bytes.Trim(field[n:], "\x00")) != 0 {
		return "", false
	}
	return string(field[:n]), true
}

// receive reads one record and the fds that came with it (§2), with
// MSG_CMSG_CLOEXEC so that the kernel installs them close-on-exec. It
// returns errEOF at the channel's end, a *ProtocolError for a truncated
// record or a control message other than SCM_RIGHTS (having closed any
// fds that came with it), or the error of recvmsg.
func receive(fd int, buf, oob []byte) (rec []byte, fds []int, err error) {
	var n, oobn, flags int
	for {
		// MSG_DONTWAIT and a wait of our own: the same whether fd 3 is
		// blocking or not (§2: something may have made it non-blocking).
		n, oobn, flags, _, err = syscall.Recvmsg(fd, buf, oob, syscall.MSG_CMSG_CLOEXEC|syscall.MSG_DONTWAIT)
		if err == syscall.EAGAIN {
			if err = waitFD(fd, pollIn); err == nil {
				continue
			}
		}
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.ECONNRESET {
		// Linux reports a SOCK_SEQPACKET peer that closed with records
		// of ours unread (a heartbeat, say) this way, once, instead of a
		// 0-byte read.
		return nil, nil, errEOF
	}
	if err != nil {
		return nil, nil, err
	}
	// The fds first, so that every error below can close them.
	var bad error
	cmsgs, perr := syscall.ParseSocketControlMessage(oob[:oobn])
	if perr != nil {
		bad = protocolErrorf("unparsable control message: %v", perr)
	}
	for i := range cmsgs {
		m := &cmsgs[i]
		if m.Header.Level != syscall.SOL_SOCKET || m.Header.Type != syscall.SCM_RIGHTS {
			bad = protocolErrorf("control message level %d type %d, not SCM_RIGHTS", m.Header.Level, m.Header.Type)
			continue
		}
		got, rerr := syscall.ParseUnixRights(m)
		if rerr != nil {
			bad = protocolErrorf("bad SCM_RIGHTS: %v", rerr)
		}
		fds = append(fds, got...)
	}
	switch {
	case flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0:
		bad = protocolErrorf("record or fds truncated (flags %#x, %d bytes, %d fds)", flags, n, len(fds))
	case bad != nil:
	case n == 0 && len(fds) == 0:
		return nil, nil, errEOF
	}
	if bad != nil {
		closeFDs(fds)
		return nil, nil, bad
	}
	return buf[:n], fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// Events for waitFD (poll(2)).
const (
	pollIn  = 0x1
	pollOut = 0x4
)

// waitFD blocks until fd is readable (pollIn) or writable (pollOut), or
// has an error or hang-up for the next call to report.
func waitFD(fd int, events int16) error {
	pfd := struct {
		fd              int32
		events, revents int16
	}{fd: int32(fd), events: events}
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, 0, 0, 0, 0)
		switch e {
		case 0:
			return nil
		case syscall.EINTR:
		default:
			return e
		}
	}
}

// sendRecord sends one record in one sendmsg (§2), waiting while the
// channel is full: never dropped. MSG_NOSIGNAL: once batond is gone this
// fails with EPIPE rather than raising SIGPIPE.
func sendRecord(fd int, msg []byte) error {
	for {
		err := syscall.Sendmsg(fd, msg, nil, nil, syscall.MSG_NOSIGNAL|syscall.MSG_DONTWAIT)
		switch err {
		case nil:
			return nil
		case syscall.EINTR:
		case syscall.EAGAIN:
			if err := waitFD(fd, pollOut); err != nil {
				return err
			}
		case syscall.ENOBUFS: // no memory for the record now: try again soon
			time.Sleep(time.Millisecond)
		default:
			return err
		}
	}
}
