package baton

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fake plays batond on the other end of a worker's channel.
type fake struct {
	t   *testing.T
	sup int // batond's end
	w   *Worker
}

func newFake(t *testing.T) *fake {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	tv := syscall.Timeval{Sec: 5}
	if err := syscall.SetsockoptTimeval(fds[0], syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	w, err := OpenFD(fds[1])
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{t: t, sup: fds[0], w: w}
	t.Cleanup(func() {
		f.closeSup()
		<-w.readerEnd // EOF: the reader is done with the worker's end
		select {
		case <-w.gone: // and nothing is sent on it any more
			syscall.Close(fds[1])
		default:
			// After a protocol error heartbeats still use it: leave it
			// open, or they would go to whatever reuses the number.
		}
	})
	return f
}

func (f *fake) closeSup() {
	if f.sup >= 0 {
		syscall.Close(f.sup)
		f.sup = -1
	}
}

func (f *fake) send(msg []byte, fds ...int) {
	f.t.Helper()
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	err := syscall.Sendmsg(f.sup, msg, oob, nil, 0)
	for err == syscall.EINTR {
		err = syscall.Sendmsg(f.sup, msg, oob, nil, 0)
	}
	if err != nil {
		f.t.Fatal("send: ", err)
	}
}

// recvAny returns the next record from the worker, heartbeats included.
func (f *fake) recvAny() []byte {
	f.t.Helper()
	buf := make([]byte, 4096)
	oob := make([]byte, 64)
	n, oobn, flags, _, err := syscall.Recvmsg(f.sup, buf, oob, 0)
	for err == syscall.EINTR {
		n, oobn, flags, _, err = syscall.Recvmsg(f.sup, buf, oob, 0)
	}
	if err != nil {
		f.t.Fatal("recv: ", err)
	}
	if oobn != 0 || flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0 {
		f.t.Fatalf("worker record with control data (%d bytes) or flags %#x", oobn, flags)
	}
	if n == 0 {
		f.t.Fatal("worker closed the channel")
	}
	return buf[:n]
}

// recv returns the next record of type want, skipping heartbeats unless
// want is HEARTBEAT.
func (f *fake) recv(want uint16) []byte {
	f.t.Helper()
	for {
		m := f.recvAny()
		typ := binary.LittleEndian.Uint16(m)
		if typ == typeHeartbeat && want != typeHeartbeat {
			continue
		}
		if typ != want {
			f.t.Fatalf("got type %d (% x), want %d", typ, m, want)
		}
		return m
	}
}

// quiet asserts that the worker sends nothing but heartbeats for d.
func (f *fake) quiet(d time.Duration) {
	f.t.Helper()
	tv := syscall.NsecToTimeval(d.Nanoseconds())
	syscall.SetsockoptTimeval(f.sup, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	defer func() {
		tv := syscall.Timeval{Sec: 5}
		syscall.SetsockoptTimeval(f.sup, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	}()
	buf := make([]byte, 4096)
	for {
		n, _, err := syscall.Recvfrom(f.sup, buf, 0)
		if err == syscall.EINTR {
			continue // SO_RCVTIMEO starts over: d is a lower bound
		}
		if err == syscall.EAGAIN {
			return
		}
		if err != nil || n == 0 {
			f.t.Fatalf("recv: %d %v", n, err)
		}
		if typ := binary.LittleEndian.Uint16(buf); typ != typeHeartbeat {
			f.t.Fatalf("unexpected message % x", buf[:n])
		}
	}
}

// status sends STATUS and returns the HEARTBEAT's active count.
func (f *fake) status() uint32 {
	f.t.Helper()
	f.send(encode(typeStatus, nil))
	m := f.recv(typeHeartbeat)
	return binary.LittleEndian.Uint32(m[8:])
}

func (f *fake) ready(capacity int) {
	f.t.Helper()
	if err := f.w.ReadyWithCapacity(capacity); err != nil {
		f.t.Fatal(err)
	}
	f.recv(typeReady)
}

// client makes a connected stream socketpair: the client's end as a
// net.Conn and the server's end as an fd for a CONN.
func client(t *testing.T) (net.Conn, int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "client")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, fds[1]
}

func ids(m []byte) []uint64 {
	n := int(binary.LittleEndian.Uint16(m[8:]))
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(m[16+8*i:])
	}
	return out
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("timeout waiting for ", what)
	}
}

// openFDs is the set of this process's open fds, each with what it
// points at. Compare sets, not counts: an fd an earlier test left to a
// goroutine may close while a later test runs.
func openFDs(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	set := make(map[string]bool, len(ents))
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own fd, closed by now
		}
		set[e.Name()+" -> "+target] = true
	}
	return set
}

// newFDs lists the fds open now that were not open in before.
func newFDs(t *testing.T, before map[string]bool) []string {
	t.Helper()
	var added []string
	for fd := range openFDs(t) {
		if !before[fd] {
			added = append(added, fd)
		}
	}
	sort.Strings(added)
	return added
}

func TestReadyOnceThenHeartbeats(t *testing.T) {
	f := newFake(t)
	f.quiet(100 * time.Millisecond) // nothing before Ready
	if err := f.w.ReadyWithCapacity(64); err != nil {
		t.Fatal(err)
	}
	if got, want := f.recvAny(), encodePair(typeReady, 64, 0); !bytes.Equal(got, want) {
		t.Fatalf("READY % x, want % x", got, want)
	}
	// a HEARTBEAT right away, then about once a second
	if got, want := f.recvAny(), encodePair(typeHeartbeat, 0, 64); !bytes.Equal(got, want) {
		t.Fatalf("HEARTBEAT % x, want % x", got, want)
	}
	t0 := time.Now()
	f.recv(typeHeartbeat)
	if d := time.Since(t0); d < 700*time.Millisecond || d > 2*time.Second {
		t.Errorf("next heartbeat after %v", d)
	}
	if err := f.w.Ready(); err != ErrAlreadyReady {
		t.Errorf("second Ready: %v", err)
	}
	if f.status() != 0 { // and no second READY before it
		t.Error("active != 0")
	}
	if err := f.w.ReadyWithCapacity(-1); err == nil {
		t.Error("negative capacity accepted")
	}
}

func TestReadyDefaultCapacity(t *testing.T) {
	f := newFake(t)
	if err := f.w.Ready(); err != nil {
		t.Fatal(err)
	}
	m := f.recv(typeReady)
	if got := binary.LittleEndian.Uint32(m[8:]); got != fdCapacity(0) {
		t.Errorf("READY capacity %d, want %d (0 capped to the fd limit)", got, fdCapacity(0))
	}
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	if rl.Cur != ^uint64(0) && uint64(fdCapacity(0)) != rl.Cur-FDReserve && rl.Cur > 2*FDReserve {
		t.Errorf("fdCapacity(0) = %d with a limit of %d", fdCapacity(0), rl.Cur)
	}
}

// Capacity is capped to the soft fd limit less FDReserve, as libbaton's.
func TestReadyCapacityCappedByFDLimit(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Max < 200 {
		t.Skipf("hard fd limit %d", rl.Max)
	}
	low := rl
	low.Cur = 200
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	for _, c := range []struct{ n, want int }{{0, 200 - FDReserve}, {64, 64}, {500, 200 - FDReserve}} {
		f := newFake(t)
		if err := f.w.ReadyWithCapacity(c.n); err != nil {
			t.Fatal(err)
		}
		if got, want := f.recvAny(), encodePair(typeReady, uint32(c.want), 0); !bytes.Equal(got, want) {
			t.Errorf("capacity %d: READY % x, want % x", c.n, got, want)
		}
		if got, want := f.recvAny(), encodePair(typeHeartbeat, 0, uint32(c.want)); !bytes.Equal(got, want) {
			t.Errorf("capacity %d: HEARTBEAT % x, want % x", c.n, got, want)
		}
	}
}

// A CONN of two: one ACK for both, sent on receipt, before Accept and
// before any byte is read; each Conn's first Close sends its DONE.
func TestConnAckAcceptDone(t *testing.T) {
	f := newFake(t)
	f.ready(64)
	fdsBefore := openFDs(t)
	c1, s1 := client(t)
	c2, s2 := client(t)
	c1.Write([]byte("ping1"))
	f.send(connMsg(-1, 0, entryBytes{7, "v4", "127.0.0.1:5555"}, entryBytes{8, "unix", "unix"}), s1, s2)
	syscall.Close(s1)
	syscall.Close(s2)
	if got, want := f.recv(typeAck), encodeIDs(typeAck, []uint64{7, 8}); !bytes.Equal(got, want) {
		t.Fatalf("ACK % x, want % x", got, want)
	}
	if f.status() != 2 {
		t.Error("active != 2 after the ACK")
	}
	ln := f.w.Listener()
	if ln != f.w.Listener() {
		t.Error("Listener is not the same each time")
	}
	var conns []*Conn
	for i := 0; i < 2; i++ {
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc.(*Conn))
	}
	a, b := conns[0], conns[1]
	if a.ID() != 7 || a.ListenerName() != "v4" || a.Peer() != "127.0.0.1:5555" ||
		b.ID() != 8 || b.ListenerName() != "unix" || b.Peer() != "unix" {
		t.Fatalf("%+v %+v", a, b)
	}
	if _, ok := a.NetConn().(*net.UnixConn); !ok {
		t.Errorf("NetConn is %T", a.NetConn())
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "ping1" {
		t.Fatalf("read %q %v: the bytes sent before the CONN", buf, err)
	}
	a.Write([]byte("pong"))
	if _, err := io.ReadFull(c1, buf[:4]); err != nil || string(buf[:4]) != "pong" {
		t.Fatal(err)
	}
	if f.w.Active() != 2 {
		t.Error("Active() != 2")
	}

	// Close from several goroutines at once: one DONE.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); a.Close() }()
	}
	wg.Wait()
	if got, want := f.recv(typeDone), encodeIDs(typeDone, []uint64{7}); !bytes.Equal(got, want) {
		t.Fatalf("DONE % x, want % x", got, want)
	}
	if f.status() != 1 { // the HEARTBEAT follows at once: no second DONE
		t.Error("active != 1")
	}
	if n, err := c1.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("client of a closed Conn reads %d, %v", n, err)
	}
	b.CloseWrite()
	if n, err := c2.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("after CloseWrite the client reads %d, %v", n, err)
	}
	f.quiet(50 * time.Millisecond) // CloseWrite is not the end
	b.Close()
	b.Close()
	if got := ids(f.recv(typeDone)); len(got) != 1 || got[0] != 8 {
		t.Fatal(got)
	}
	if f.status() != 0 {
		t.Error("active != 0")
	}
	c1.Close()
	c2.Close()
	// every fd received is closed: the received one by the library, the
	// dup by Close
	if added := newFDs(t, fdsBefore); len(added) > 0 {
		t.Errorf("fds left open: %v", added)
	}
}

// Connections that arrive before anything Accepts wait, acknowledged.
func TestConnBeforeAcceptIsQueued(t *testing.T) {
	f := newFake(t)
	f.ready(0)
	var clients []net.Conn
	for i := 0; i < 20; i++ {
		c, s := client(t)
		clients = append(clients, c)
		f.send(connMsg(-1, 0, entryBytes{uint64(100 + i), "v4", "1.2.3.4:5"}), s)
		syscall.Close(s)
		if got := ids(f.recv(typeAck)); got[0] != uint64(100+i) {
			t.Fatal(got)
		}
	}
	// two acceptors share the queue, every connection once
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				nc, err := f.w.Listener().Accept()
				if err != nil {
					return
				}
				mu.Lock()
				seen[nc.(*Conn).ID()] = true
				done := len(seen) == 20
				mu.Unlock()
				nc.Close()
				if done {
					f.w.Listener().Close()
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != 20 {
		t.Fatalf("accepted %d of 20", len(seen))
	}
	for i := 0; i < 20; i++ {
		f.recv(typeDone)
	}
	waitClosed(t, f.w.finished, "Wait")
}

func TestStatusAnsweredWithActive(t *testing.T) {
	f := newFake(t)
	f.ready(8)
	for i := 0; i < 3; i++ {
		_, s := client(t)
		f.send(connMsg(-1, 0, entryBytes{uint64(i + 1), "v4", "x"}), s)
		syscall.Close(s)
		f.recv(typeAck)
	}
	f.send(encode(typeStatus, nil))
	t0 := time.Now()
	if got, want := f.recv(typeHeartbeat), encodePair(typeHeartbeat, 3, 8); !bytes.Equal(got, want) {
		t.Fatalf("HEARTBEAT % x, want % x", got, want)
	}
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Errorf("STATUS answered after %v", d)
	}
}

// DRAIN: Accept returns what came before, then fails; Drained closes once
// it has; Wait returns once every Conn is closed; STATUS is still answered.
func TestDrain(t *testing.T) {
	f := newFake(t)
	f.ready(64)
	c, s := client(t)
	f.send(connMsg(-1, 0, entryBytes{5, "v4", "x"}), s)
	syscall.Close(s)
	f.recv(typeAck)
	f.send(encode(typeDrain, nil))
	if f.status() != 1 {
		t.Error("active != 1")
	}
	if closed(f.w.Drained()) {
		t.Fatal("drained with a connection not yet accepted")
	}
	nc, err := f.w.Listener().Accept()
	if err != nil || nc.(*Conn).ID() != 5 {
		t.Fatal(nc, err)
	}
	waitClosed(t, f.w.Drained(), "Drained")
	if _, err := f.w.Listener().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after the drain: %v", err)
	}
	if err := f.w.Ready(); err == nil {
		t.Error("Ready after a drain succeeded")
	}
	waited := make(chan error)
	go func() { waited <- f.w.Wait() }()
	select {
	case err := <-waited:
		t.Fatal("Wait returned with a connection open: ", err)
	case <-time.After(100 * time.Millisecond):
	}
	nc.Write([]byte("bye"))
	nc.Close()
	f.recv(typeDone)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if f.w.Err() != nil {
		t.Fatal(f.w.Err())
	}
	buf, _ := io.ReadAll(c)
	if string(buf) != "bye" {
		t.Fatalf("%q", buf)
	}
}

// A blocked Accept wakes up at the drain.
func TestDrainWakesAccept(t *testing.T) {
	f := newFake(t)
	f.ready(64)
	errc := make(chan error)
	go func() {
		_, err := f.w.Listener().Accept()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	f.send(encode(typeDrain, nil))
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still blocked after DRAIN")
	}
	if err := f.w.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Channel EOF (§5.6): drained, Err says batond is gone, Wait returns nil.
// Both ways Linux reports it: a 0-byte read, or ECONNRESET when batond
// closed with a record of ours unread.
func TestEOF(t *testing.T) {
	for _, unread := range []bool{false, true} {
		f := newFake(t)
		if err := f.w.ReadyWithCapacity(4); err != nil {
			t.Fatal(err)
		}
		if !unread {
			f.recv(typeReady)
			f.recv(typeHeartbeat)
		} else {
			time.Sleep(50 * time.Millisecond)
		}
		f.closeSup()
		waitClosed(t, f.w.Drained(), "Drained")
		if err := f.w.Wait(); err != nil {
			t.Fatal(unread, err)
		}
		if err := f.w.Err(); err != ErrSupervisorGone {
			t.Fatal(unread, err)
		}
		waitClosed(t, f.w.gone, "heartbeats to stop")
		if _, err := f.w.Listener().Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatal(err)
		}
	}
}

// EOF with a connection open: it is served to its end, and its DONE
// (which cannot be delivered) does not get in the way.
func TestEOFWithOpenConnection(t *testing.T) {
	f := newFake(t)
	f.ready(4)
	c, s := client(t)
	f.send(connMsg(-1, 0, entryBytes{1, "v4", "x"}), s)
	syscall.Close(s)
	f.recv(typeAck)
	nc, err := f.w.Listener().Accept()
	if err != nil {
		t.Fatal(err)
	}
	f.closeSup()
	waitClosed(t, f.w.Drained(), "Drained")
	if closed(f.w.finished) {
		t.Fatal("finished with a connection open")
	}
	c.Write([]byte("x"))
	buf := make([]byte, 1)
	if _, err := nc.Read(buf); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := f.w.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Every malformed message: a *ProtocolError, no ACK, its fds closed.
func TestMalformedFromBatond(t *testing.T) {
	ok := entryBytes{9, "v4", "1.2.3.4:5"}
	many := make([]entryBytes, 16)
	for i := range many {
		many[i] = ok
	}
	withVersion := encode(typeStatus, nil)
	withVersion[2] = 2
	cases := []struct {
		name string
		msg  []byte
		nfds int
	}{
		{"short", []byte{3, 0, 1, 0}, 0},
		{"version 2", withVersion, 0},
		{"STATUS with a body", encode(typeStatus, make([]byte, 4)), 0},
		{"DRAIN with an fd", encode(typeDrain, nil), 1},
		{"a worker type", encodePair(typeReady, 0, 0), 0},
		{"unknown type", encode(99, nil), 0},
		{"CONN count 0", connMsg(0, 0), 0},
		{"CONN 16 with 17 fds: MSG_CTRUNC", connMsg(-1, 0, many...), 17},
		{"CONN reserved", connMsg(-1, 1, ok), 1},
		{"CONN too few fds", connMsg(-1, 0, ok, ok), 1},
		{"CONN too many fds", connMsg(-1, 0, ok), 2},
		{"CONN no fds", connMsg(-1, 0, ok), 0},
		{"CONN peer text after NUL", connMsg(-1, 0, entryBytes{9, "v4", "1.2.3.4\x00junk"}), 1},
		{"empty record with an fd", nil, 1},
		{"too big for the buffer: MSG_TRUNC", append(connMsg(-1, 0, ok), make([]byte, recvBufSize)...), 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			f.ready(64)
			var clients []net.Conn
			var fds []int
			for i := 0; i < c.nfds; i++ {
				cl, s := client(t)
				clients = append(clients, cl)
				fds = append(fds, s)
			}
			f.send(c.msg, fds...)
			for _, s := range fds {
				syscall.Close(s)
			}
			waitClosed(t, f.w.Drained(), "Drained")
			var pe *ProtocolError
			if err := f.w.Err(); !errors.As(err, &pe) {
				t.Fatalf("Err() = %v", err)
			}
			if err := f.w.Wait(); !errors.As(err, &pe) {
				t.Fatalf("Wait() = %v", err)
			}
			if _, err := f.w.Listener().Accept(); !errors.Is(err, net.ErrClosed) {
				t.Fatal(err)
			}
			f.quiet(100 * time.Millisecond) // no ACK, nothing but heartbeats
			for _, cl := range clients {    // the worker's copies are closed
				cl.SetReadDeadline(time.Now().Add(2 * time.Second))
				if n, err := cl.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Fatalf("client reads %d %v: fd still open in the worker", n, err)
				}
			}
			// and it reads the channel no more: a CONN now is not acked
			_, s := client(t)
			f.send(connMsg(-1, 0, ok), s)
			syscall.Close(s)
			f.quiet(100 * time.Millisecond)
		})
	}
}

// An fd that is not a socket: acknowledged (it was received), then
// reported DONE since it cannot be served.
func TestConnNotASocket(t *testing.T) {
	f := newFake(t)
	f.ready(4)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f.send(connMsg(-1, 0, entryBytes{3, "v4", "x"}), int(r.Fd()))
	f.recv(typeAck)
	if got := ids(f.recv(typeDone)); got[0] != 3 {
		t.Fatal(got)
	}
	if f.status() != 0 {
		t.Error("active != 0")
	}
}

// The program closes the listener before any drain: queued connections
// are closed and reported, later ones are left unacknowledged for batond
// to give to another worker.
func TestListenerClosedByProgram(t *testing.T) {
	f := newFake(t)
	f.ready(4)
	c, s := client(t)
	f.send(connMsg(-1, 0, entryBytes{1, "v4", "x"}), s)
	syscall.Close(s)
	f.recv(typeAck)
	if err := f.w.Listener().Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.w.Listener().Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if got := ids(f.recv(typeDone)); got[0] != 1 {
		t.Fatal(got)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatal(n, err)
	}
	waitClosed(t, f.w.Drained(), "Drained")
	if _, err := f.w.Listener().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	c2, s2 := client(t)
	f.send(connMsg(-1, 0, entryBytes{2, "v4", "x"}), s2)
	syscall.Close(s2)
	if f.status() != 0 { // no ACK before the HEARTBEAT
		t.Error("active != 0")
	}
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c2.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatal(n, err)
	}
	if err := f.w.Wait(); err != nil || f.w.Err() != nil {
		t.Fatal(err, f.w.Err())
	}
}

func TestOpenFDChecks(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	if _, err := OpenFD(fds[0]); err == nil || !strings.Contains(err.Error(), "SOCK_SEQPACKET") {
		t.Errorf("stream socket: %v", err)
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if _, err := OpenFD(int(r.Fd())); err == nil {
		t.Error("a pipe accepted")
	}
}

func TestOpenWithoutBatond(t *testing.T) {
	t.Setenv("BATON_FD", "")
	if _, err := Open(); err != ErrNoChannel {
		t.Errorf("no BATON_FD: %v", err)
	}
	t.Setenv("BATON_FD", "x")
	if _, err := Open(); err == nil {
		t.Error("BATON_FD=x accepted")
	}
	t.Setenv("BATON_FD", "0") // stdin: not a SEQPACKET socket
	if _, err := Open(); err == nil || !strings.Contains(err.Error(), "BATON_FD=0") {
		t.Errorf("BATON_FD=0: %v", err)
	}
}

// net/http through the listener: CloseOnDrain answers with
// "Connection: close" once draining and the connection ends after it; an
// idle kept-alive connection is not closed under its client.
func TestHTTPCloseOnDrain(t *testing.T) {
	f := newFake(t)
	f.ready(64)
	srv := &http.Server{Handler: f.w.CloseOnDrain(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.WriteString(rw, "hi\n")
	}))}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(f.w.Listener()) }()
	c, s := client(t)
	f.send(connMsg(-1, 0, entryBytes{42, "v4", "x"}), s)
	syscall.Close(s)
	f.recv(typeAck)
	br := bufio.NewReader(c)
	get := func() *http.Response {
		t.Helper()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := get(); resp.StatusCode != 200 || resp.Close {
		t.Fatalf("%+v", resp)
	}
	f.send(encode(typeDrain, nil))
	waitClosed(t, f.w.Drained(), "Drained")
	select {
	case err := <-served:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	// the idle connection stays open: the worker waits for its next request
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := br.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle connection: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	if resp := get(); resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("after the drain: %+v", resp)
	}
	if _, err := br.Peek(1); err != io.EOF {
		t.Fatalf("connection not closed after Connection: close: %v", err)
	}
	if got := ids(f.recv(typeDone)); got[0] != 42 {
		t.Fatal(got)
	}
	if err := f.w.Wait(); err != nil {
		t.Fatal(err)
	}
}

// The Shutdown pattern: idle connections are closed at once and reported
// DONE, Serve returns, Wait returns.
func TestHTTPShutdownOnDrain(t *testing.T) {
	f := newFake(t)
	f.ready(64)
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.WriteString(rw, "hi\n")
	})}
	shut := make(chan error, 1)
	go func() {
		<-f.w.Drained()
		shut <- srv.Shutdown(context.Background())
	}()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(f.w.Listener()) }()
	c, s := client(t)
	f.send(connMsg(-1, 0, entryBytes{42, "v4", "x"}), s)
	syscall.Close(s)
	f.recv(typeAck)
	br := bufio.NewReader(c)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.Close {
		t.Fatal(resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	f.send(encode(typeDrain, nil))
	if got := ids(f.recv(typeDone)); got[0] != 42 {
		t.Fatal(got)
	}
	if _, err := br.Peek(1); err != io.EOF {
		t.Fatalf("idle connection not closed: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != http.ErrServerClosed && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	if err := f.w.Wait(); err != nil {
		t.Fatal(err)
	}
}

// A non-blocking fd 3 (§2 allows it; Go's net.FileConn on fd 3 does it
// silently) changes nothing: an idle channel is not taken for a lost one,
// and records that meet a full channel wait for room, none dropped.
func TestNonblockingChannel(t *testing.T) {
	f := newFake(t)
	if err := syscall.SetNonblock(f.w.fd, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the read loop meets EAGAIN
	if f.status() != 0 {
		t.Fatal("active != 0")
	}
	const n = 3000 // far more HEARTBEATs than the channel holds
	sent := make(chan error, 1)
	go func(sup int) {
		var err error
		for i := 0; i < n && err == nil; i++ {
			err = syscall.Sendmsg(sup, encode(typeStatus, nil), nil, nil, 0)
			if err == syscall.EINTR {
				i, err = i-1, nil
			}
		}
		sent <- err
	}(f.sup)
	time.Sleep(300 * time.Millisecond) // the worker's sends fill the channel
	for i := 0; i < n; i++ {
		f.recv(typeHeartbeat)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	f.quiet(100 * time.Millisecond)
	if closed(f.w.Drained()) {
		t.Fatal(f.w.Err())
	}
}
