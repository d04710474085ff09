// Command goworker is a baton worker in Go, standard library only: a small
// HTTP/1.1 server for the client connections batond hands it.
//
// The wire format and every rule followed here are in worker/PROTOCOL.md;
// the section numbers below (§N) point into it. In short: the channel to
// batond is the AF_UNIX/SOCK_SEQPACKET socket on fd $BATON_FD (3). Send
// READY; for each CONN send one ACK for all its ids before touching the
// connections; send DONE for each connection when it closes and a
// HEARTBEAT every second and in answer to STATUS. On DRAIN or channel EOF,
// take no more work, finish the open connections and exit 0. On a
// malformed message from batond, say so on stderr and exit 1.
//
// The connections are served by net/http: a net.Listener whose Accept
// returns the connections batond passed, a ConnState hook that reports
// DONE when net/http closes one, and a handler that answers "Connection:
// close" once the worker is draining. GET or HEAD of / answers 200
// "hello from go\n" with the headers X-Baton-Pid and X-Baton-Generation;
// other paths 404, other methods 405.
//
// Draining never races a client: a kept-alive connection is closed only
// right after a response that said "Connection: close", so the next request
// on each connection is still answered. Idle ones stay open until the
// client leaves, the idle timeout ends them, or the worker has to exit:
// the stop signal batond sends after drain_timeout (§5.7) is left at its
// default action, which ends the process and with it every connection.
//
// Build and run (Go 1.19 or later):
//
//	cd worker/examples/go_worker && go build -o /usr/local/bin/goworker .
//
//	[program:go]
//	command = /usr/local/bin/goworker
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Message types (§3). 1..99 go from batond to the worker, 100..199 back.
const (
	msgConn      = 1   // batond → worker: connections + their fds
	msgDrain     = 2   // batond → worker: finish and exit
	msgStatus    = 3   // batond → worker: answer with a HEARTBEAT now
	msgReady     = 100 // worker → batond: once, when set up
	msgAck       = 101 // worker → batond: these connections are mine
	msgDone      = 102 // worker → batond: these connections are finished
	msgHeartbeat = 103 // worker → batond: alive, with load
)

// Sizes (§3, §4). Every integer on the wire is little-endian.
const (
	protoVersion = 1
	headerSize   = 8   // u16 type, u16 version, u32 length (of the whole record)
	connFixed    = 12  // CONN: header, u16 count, u16 reserved
	connEntry    = 104 // CONN entry: u64 id, 32-byte listener, 64-byte peer
	connMax      = 16  // CONN count is 1..16, so at most 16 fds per record
	idsMax       = 128 // ACK and DONE carry 1..128 ids
	listenerSize = 32
	peerSize     = 64
	// The largest message is a CONN of 16: 12 + 104*16 = 1676 bytes. A
	// bigger buffer is fine; a smaller one would truncate (MSG_TRUNC).
	recvBufSize = 4096
)

const (
	capacity    = 64 // announced in READY: at most this many connections at once
	idleTimeout = 75 * time.Second
	body        = "hello from go\n"
)

// ---------------------------------------------------------------- the channel

// channel is the SOCK_SEQPACKET socket to batond. It is used as a raw fd,
// not an *os.File: os.NewFile(3, ...) would close fd 3 from a finalizer once
// the File is garbage collected, and a worker must not close the channel
// while it runs (§1). The fd stays blocking, as batond created it; the read
// loop has a goroutine (and so an OS thread) to itself.
type channel struct {
	fd int
	mu sync.Mutex // one sender at a time (§2)
}

// send writes one record: the 8-byte header, then body. A record is one
// sendmsg, never split (§2). Worker messages carry no fds (§2).
func (c *channel) send(typ uint16, body []byte) {
	msg := make([]byte, headerSize+len(body))
	binary.LittleEndian.PutUint16(msg[0:], typ)
	binary.LittleEndian.PutUint16(msg[2:], protoVersion)
	binary.LittleEndian.PutUint32(msg[4:], uint32(len(msg)))
	copy(msg[headerSize:], body)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		// MSG_NOSIGNAL: if batond is gone this fails with EPIPE instead of
		// raising SIGPIPE. The failure is ignored: the read loop sees EOF
		// and drains (§5.6).
		err := syscall.Sendmsg(c.fd, msg, nil, nil, syscall.MSG_NOSIGNAL)
		if err != syscall.EINTR {
			return
		}
	}
}

// sendIDs sends ACK or DONE: u16 count, 6 zero padding bytes, count u64 ids
// (§4.5, §4.6), in messages of at most 128 ids.
func (c *channel) sendIDs(typ uint16, ids []uint64) {
	for len(ids) > 0 {
		n := len(ids)
		if n > idsMax {
			n = idsMax
		}
		b := make([]byte, 8+8*n) // bytes 2..7 stay zero: the padding
		binary.LittleEndian.PutUint16(b[0:], uint16(n))
		for i, id := range ids[:n] {
			binary.LittleEndian.PutUint64(b[8+8*i:], id)
		}
		c.send(typ, b)
		ids = ids[n:]
	}
}

// sendPair sends READY {capacity, 0} or HEARTBEAT {active, capacity}: two
// u32s (§4.4, §4.7).
func (c *channel) sendPair(typ uint16, a, b uint32) {
	p := make([]byte, 8)
	binary.LittleEndian.PutUint32(p[0:], a)
	binary.LittleEndian.PutUint32(p[4:], b)
	c.send(typ, p)
}

// errEOF: batond closed its end of the channel (§5.6).
var errEOF = errors.New("channel closed by batond")

// protocolError is a malformed message from batond (§6). receive has
// already closed the fds that came with it.
type protocolError struct{ why string }

func (e *protocolError) Error() string { return e.why }

// receive reads one record: the whole record (header included, so the
// offsets in PROTOCOL.md's tables apply as they are) and the fds that came
// with it. It checks what every message must satisfy: no truncation, only
// SCM_RIGHTS, at least a header, version 1, length = bytes received.
func (c *channel) receive() (msg []byte, fds []int, err error) {
	buf := make([]byte, recvBufSize)
	oob := make([]byte, syscall.CmsgSpace(connMax*4)) // room for 16 fds: 80 bytes
	var n, oobn, flags int
	for {
		// MSG_CMSG_CLOEXEC: the kernel installs the received fds
		// close-on-exec. Without it they are inheritable (§2).
		n, oobn, flags, _, err = syscall.Recvmsg(c.fd, buf, oob, syscall.MSG_CMSG_CLOEXEC)
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.ECONNRESET {
		// Also EOF: Linux reports a SOCK_SEQPACKET peer that closed with
		// records of ours still unread (a heartbeat, say) this way, once,
		// instead of a 0-byte read.
		return nil, nil, errEOF
	}
	if err != nil {
		return nil, nil, err
	}
	// Collect the fds first, so that every error path can close them.
	var bad string
	cmsgs, perr := syscall.ParseSocketControlMessage(oob[:oobn])
	if perr != nil {
		bad = "unparsable control message: " + perr.Error()
	}
	for i := range cmsgs {
		m := &cmsgs[i]
		if m.Header.Level != syscall.SOL_SOCKET || m.Header.Type != syscall.SCM_RIGHTS {
			bad = fmt.Sprintf("control message level %d type %d, not SCM_RIGHTS", m.Header.Level, m.Header.Type)
			continue
		}
		got, rerr := syscall.ParseUnixRights(m)
		if rerr != nil {
			bad = "bad SCM_RIGHTS: " + rerr.Error()
		}
		fds = append(fds, got...)
	}
	switch {
	case flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0:
		bad = fmt.Sprintf("message or fds truncated (flags %#x)", flags)
	case bad != "":
	case n == 0 && len(fds) == 0:
		return nil, nil, errEOF // batond never sends an empty record
	case n < headerSize:
		bad = fmt.Sprintf("short message (%d bytes)", n)
	default:
		typ := binary.LittleEndian.Uint16(buf[0:])
		version := binary.LittleEndian.Uint16(buf[2:])
		length := binary.LittleEndian.Uint32(buf[4:])
		if version != protoVersion || length != uint32(n) {
			bad = fmt.Sprintf("bad header (type %d, version %d, length %d, %d bytes received)",
				typ, version, length, n)
		}
	}
	if bad != "" {
		closeAll(fds)
		return nil, nil, &protocolError{bad}
	}
	return buf[:n], fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// entry is one connection of a CONN message (§4.1).
type entry struct {
	id       uint64
	listener string // [listener:NAME] that accepted it
	peer     string // "1.2.3.4:5678", "[::1]:5678" or "unix"
	fd       int
}

// parseConn checks a CONN record exactly as batond's own decoder would
// (§4.1) and pairs each entry with its fd: the i-th fd is the i-th entry's.
func parseConn(msg []byte, fds []int) ([]entry, error) {
	if len(msg) < connFixed {
		return nil, fmt.Errorf("CONN of %d bytes", len(msg))
	}
	count := int(binary.LittleEndian.Uint16(msg[8:]))
	reserved := binary.LittleEndian.Uint16(msg[10:])
	switch {
	case count < 1 || count > connMax:
		return nil, fmt.Errorf("CONN count %d", count)
	case reserved != 0:
		return nil, fmt.Errorf("CONN reserved field %#x", reserved)
	case len(msg) != connFixed+connEntry*count:
		return nil, fmt.Errorf("CONN of %d with %d bytes", count, len(msg))
	case len(fds) != count:
		return nil, fmt.Errorf("CONN of %d with %d fds", count, len(fds))
	}
	conns := make([]entry, count)
	for i := range conns {
		e := msg[connFixed+connEntry*i:]
		listener, ok1 := text(e[8 : 8+listenerSize])
		peer, ok2 := text(e[8+listenerSize : 8+listenerSize+peerSize])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("CONN entry %d: text field not NUL-padded", i)
		}
		conns[i] = entry{binary.LittleEndian.Uint64(e[0:]), listener, peer, fds[i]}
	}
	return conns, nil
}

// text reads a NUL-padded field: some text, at least one NUL, and nothing
// but NULs after it.
func text(field []byte) (string, bool) {
	n := bytes.IndexByte(field, 0)
	if n < 0 || len(bytes.Trim(field[n:], "\x00")) != 0 {
		return "", false
	}
	return string(field[:n]), true
}

// ---------------------------------------------------------------- the worker

type worker struct {
	ch       *channel
	conns    chan net.Conn // acked connections on their way to net/http
	draining atomic.Bool   // set once, on DRAIN or EOF; read by the handler
	pid      string
	gen      string

	// mu guards active and is held while an ACK, DONE or HEARTBEAT is
	// sent, so that each HEARTBEAT's active count agrees with the ACKs and
	// DONEs before it on the channel. (Lock order: mu, then ch.mu.)
	mu     sync.Mutex
	active uint32        // acked and not yet done
	exit   chan struct{} // closed when draining and active == 0
	exited bool
}

// readLoop handles batond's messages until the channel closes.
func (w *worker) readLoop() {
	for {
		msg, fds, err := w.ch.receive()
		var perr *protocolError
		switch {
		case errors.As(err, &perr):
			fail(perr.Error())
		case err == errEOF:
			log.Printf("channel closed: batond is gone; finishing %d connections", w.load())
			w.drain()
			return
		case err != nil:
			log.Printf("channel lost (%v); finishing %d connections", err, w.load())
			w.drain()
			return
		}
		typ := binary.LittleEndian.Uint16(msg[0:])
		switch {
		case typ == msgConn:
			conns, err := parseConn(msg, fds)
			if err != nil {
				closeAll(fds)
				fail(err.Error())
			}
			w.accept(conns)
		case (typ == msgDrain || typ == msgStatus) && (len(msg) != headerSize || len(fds) != 0):
			closeAll(fds)
			fail(fmt.Sprintf("type %d with %d bytes and %d fds", typ, len(msg), len(fds)))
		case typ == msgStatus:
			w.heartbeat() // must answer every STATUS (§5.8)
		case typ == msgDrain:
			// No CONN follows a DRAIN (§5.5). Keep reading all the same:
			// a STATUS still gets its answer and EOF is noticed.
			log.Printf("draining: %d connections open", w.load())
			w.drain()
		default: // one of our own types (100..199) or an unknown one (§3)
			closeAll(fds)
			fail(fmt.Sprintf("unexpected message type %d", typ))
		}
	}
}

// accept takes the connections of one CONN: ACK all of them first, in one
// message, before reading or writing any of them (§5.3). Until batond has
// the ACK they are still its own, and if this worker died now it would give
// them to another worker, which must find no byte consumed.
func (w *worker) accept(conns []entry) {
	ids := make([]uint64, len(conns))
	for i, e := range conns {
		ids[i] = e.id
	}
	w.mu.Lock()
	w.ch.sendIDs(msgAck, ids)
	w.active += uint32(len(conns)) // acked, not yet done
	w.mu.Unlock()
	for _, e := range conns {
		// net.FileConn dups the fd (close-on-exec), makes the socket
		// non-blocking for Go's poller (§4.1: batond passes it blocking)
		// and returns a *net.TCPConn or *net.UnixConn.
		f := os.NewFile(uintptr(e.fd), "baton-conn-"+strconv.FormatUint(e.id, 10))
		nc, err := net.FileConn(f)
		f.Close() // the original fd; nc holds the dup
		if err != nil {
			log.Printf("connection %d from %s: %v", e.id, e.peer, err)
			w.finished(e.id) // acked, so it still needs its DONE
			continue
		}
		w.conns <- &batonConn{Conn: nc, id: e.id, listener: e.listener, peer: e.peer}
	}
}

// finished reports one connection as done: DONE after its ACK (the ACK was
// sent before the connection reached net/http), then the credit is back.
func (w *worker) finished(id uint64) {
	w.mu.Lock()
	w.ch.sendIDs(msgDone, []uint64{id})
	w.active--
	w.checkExit() // after the DONE is sent: exiting first would lose it
	w.mu.Unlock()
}

// drain: take no more work (batond sends none), answer the next request
// on each connection with "Connection: close", exit once none is left.
func (w *worker) drain() {
	w.draining.Store(true)
	w.mu.Lock()
	w.checkExit()
	w.mu.Unlock()
}

func (w *worker) checkExit() { // with w.mu held
	if w.draining.Load() && w.active == 0 && !w.exited {
		w.exited = true
		close(w.exit)
	}
}

func (w *worker) load() uint32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.active
}

func (w *worker) heartbeat() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ch.sendPair(msgHeartbeat, w.active, capacity)
}

// ---------------------------------------------------------------- HTTP

// batonConn is a connection batond handed over, with its CONN entry.
type batonConn struct {
	net.Conn
	id       uint64
	listener string
	peer     string
}

// listener is the net.Listener net/http serves: Accept returns the
// connections from CONN messages instead of calling accept(2). It never
// fails, so http.Server.Serve never returns and serves every connection.
type listener struct{ w *worker }

func (l listener) Accept() (net.Conn, error) { return <-l.w.conns, nil }
func (l listener) Close() error              { return nil }
func (l listener) Addr() net.Addr            { return &net.UnixAddr{Name: "baton", Net: "unix"} }

// connState is http.Server.ConnState: when net/http has closed a
// connection (client gone, "Connection: close" answered, idle timeout,
// error), it is DONE.
func (w *worker) connState(c net.Conn, s http.ConnState) {
	if s == http.StateClosed || s == http.StateHijacked {
		w.finished(c.(*batonConn).id)
	}
}

func (w *worker) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	h := rw.Header()
	h.Set("X-Baton-Pid", w.pid)
	h.Set("X-Baton-Generation", w.gen)
	if w.draining.Load() {
		// net/http closes the connection after this response.
		h.Set("Connection", "close")
	}
	status, text := http.StatusOK, body
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		status = http.StatusMethodNotAllowed
		h.Set("Allow", "GET, HEAD")
	case r.URL.Path != "/":
		status = http.StatusNotFound
	}
	if status != http.StatusOK {
		text = fmt.Sprintf("%d %s\n", status, http.StatusText(status))
	}
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(text)))
	rw.WriteHeader(status)
	io.WriteString(rw, text) // net/http drops the body of a HEAD response
}

// ---------------------------------------------------------------- main

func fail(why string) {
	log.Print("protocol error: ", why)
	os.Exit(1) // batond re-dispatches whatever was not acked (§6)
}

func main() {
	log.SetFlags(0)
	log.SetPrefix(fmt.Sprintf("goworker[%d]: ", os.Getpid()))
	// stdout and stderr are usually pipes batond reads (§1). If batond dies
	// they break, and Go would exit on SIGPIPE at the next log line; an
	// orphan must live on to finish its connections (§5.6), so a failed
	// write is ignored instead.
	signal.Ignore(syscall.SIGPIPE)

	// The channel: fd $BATON_FD, a SOCK_SEQPACKET socket (§1).
	fd, err := strconv.Atoi(os.Getenv("BATON_FD"))
	if err == nil {
		var typ int
		typ, err = syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
		if err == nil && typ != syscall.SOCK_SEQPACKET {
			err = errors.New("not a SOCK_SEQPACKET socket")
		}
	}
	if err != nil {
		log.Printf("no baton channel in BATON_FD=%q (%v): run me under batond", os.Getenv("BATON_FD"), err)
		os.Exit(1)
	}
	syscall.CloseOnExec(fd) // no child of ours may hold the channel open (§1)

	w := &worker{
		ch:    &channel{fd: fd},
		conns: make(chan net.Conn, capacity), // credit keeps us under capacity (§5.2)
		pid:   strconv.Itoa(os.Getpid()),
		gen:   os.Getenv("BATON_GENERATION"),
		exit:  make(chan struct{}),
	}
	srv := &http.Server{
		Handler:           w,
		ConnState:         w.connState,
		IdleTimeout:       idleTimeout, // a kept-alive connection's wait for its next request
		ReadHeaderTimeout: idleTimeout,
		MaxHeaderBytes:    16 << 10,
	}
	go srv.Serve(listener{w})

	// Set up: READY {capacity, reserved 0}, exactly once (§4.4, §5.1).
	w.ch.sendPair(msgReady, capacity, 0)
	go func() { // a HEARTBEAT about once a second (§5.8)
		for {
			w.heartbeat()
			time.Sleep(time.Second)
		}
	}()
	go w.readLoop()

	<-w.exit // draining, and every connection is done
	log.Print("drained: exiting")
	os.Exit(0)
}
