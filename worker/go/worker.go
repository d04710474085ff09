package baton

import (
	"errors"
	"fmt"
	"log"
	"math"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// heartbeatInterval: a worker should send a HEARTBEAT about once a second
// after READY (§5.8).
const heartbeatInterval = time.Second

// FDReserve is how many file descriptors Ready keeps for everything other
// than client connections when it caps the capacity it announces to the
// soft RLIMIT_NOFILE, as libbaton does (BATON_FD_RESERVE).
const FDReserve = 32

var (
	// ErrNoChannel is returned by Open (and so by Listen and the other
	// package-level functions) when BATON_FD is not set: the program was
	// not started by batond.
	ErrNoChannel = errors.New("baton: no channel to batond (BATON_FD is not set): not started by batond")

	// ErrSupervisorGone is what Err reports after the channel to batond
	// closed: batond exited or crashed (§5.6). The worker behaves as after
	// a DRAIN, and Wait returns nil: exit 0 once the open connections are
	// finished.
	ErrSupervisorGone = errors.New("baton: channel closed: batond is gone")

	// ErrAlreadyReady is returned by a second Ready: READY is sent
	// exactly once (§4.4), and batond treats a second one as a protocol
	// error.
	ErrAlreadyReady = errors.New("baton: READY was already sent")
)

// Worker is this process's end of the channel to batond. It acknowledges
// every connection batond sends as soon as it arrives and queues it for
// the Listener's Accept, reports each one's end when its Conn is closed,
// answers STATUS with a HEARTBEAT and sends one every second after Ready,
// and on DRAIN or the channel's end stops taking work (Drained) and lets
// the program finish (Wait). Most programs use the package-level
// functions, which act on Default; a Worker is for tests and for programs
// that pass the channel on another fd. All methods are safe for concurrent
// use.
type Worker struct {
	fd        int
	ln        *listener
	draining  atomic.Bool   // stopping, lock-free for CloseOnDrain
	stop      chan struct{} // closed when stopping: wakes Accept
	wake      chan struct{} // one token: a connection was queued
	drained   chan struct{} // closed when stopping and the queue is empty
	finished  chan struct{} // closed when drained and no connection is open
	gone      chan struct{} // closed when the channel ended: no more heartbeats
	readerEnd chan struct{} // closed when the read loop has returned

	// mu guards what follows. It is also held while a record is sent, so
	// records never interleave (§2) and the active count in each
	// HEARTBEAT agrees with the ACKs and DONEs before it on the channel.
	mu           sync.Mutex
	active       int    // acknowledged, not yet done
	capacity     uint32 // announced in READY
	ready        bool
	stopping     bool  // DRAIN, channel lost or listener closed: no more work
	err          error // why it stopped taking work; nil for a DRAIN
	lnClosed     bool
	queue        []*Conn // acknowledged, not yet returned by Accept
	isDrained    bool
	isFinished   bool
	heartbeating bool
	lost         bool // the channel ended: send nothing
}

// Open opens the channel to batond named by BATON_FD (fd 3), as OpenFD
// does. Without BATON_FD it returns ErrNoChannel. Open it once per
// process: Default does, for the package-level functions.
func Open() (*Worker, error) {
	s, ok := os.LookupEnv("BATON_FD")
	if !ok || s == "" {
		return nil, ErrNoChannel
	}
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("baton: BATON_FD=%q is not a file descriptor number", s)
	}
	w, err := OpenFD(fd)
	if err != nil {
		return nil, fmt.Errorf("baton: BATON_FD=%s: %w", s, err)
	}
	return w, nil
}

// OpenFD makes fd, a connected AF_UNIX/SOCK_SEQPACKET socket, the channel
// to batond and starts reading it. It checks the socket type, makes the fd
// close-on-exec (§1) and keeps it as a plain number for the life of the
// process: nothing in this package closes it (a worker must not close its
// channel while it runs, §1). Its blocking mode is left alone and does not
// matter: every call uses MSG_DONTWAIT and waits in poll(2), and a record
// that does not fit a full channel waits for room, never dropped (§2).
//
// OpenFD also has SIGPIPE delivered to a channel nobody reads
// (os/signal.Notify), so that writing to stdout or stderr after batond
// died (its pipes with it) fails with EPIPE instead of killing the program
// (§5.6); unlike signal.Ignore, that is not inherited by programs this one
// runs.
func OpenFD(fd int) (*Worker, error) {
	typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("not a socket: %w", err)
	}
	if typ != syscall.SOCK_SEQPACKET {
		return nil, fmt.Errorf("socket of type %d, not SOCK_SEQPACKET", typ)
	}
	syscall.CloseOnExec(fd)
	sigpipeOnce.Do(func() { signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE) })
	w := &Worker{
		fd:        fd,
		stop:      make(chan struct{}),
		wake:      make(chan struct{}, 1),
		drained:   make(chan struct{}),
		finished:  make(chan struct{}),
		gone:      make(chan struct{}),
		readerEnd: make(chan struct{}),
	}
	w.ln = &listener{w: w}
	go w.readLoop()
	return w, nil
}

var sigpipeOnce sync.Once

// send writes one record (sendRecord); the caller holds w.mu. Once the
// read loop has seen the channel's end nothing is sent at all.
func (w *Worker) send(msg []byte) error {
	if w.lost {
		return syscall.EPIPE
	}
	return sendRecord(w.fd, msg)
}

// readLoop handles batond's messages until the channel ends or a message
// is malformed. It waits in poll(2): this goroutine has a thread to itself.
func (w *Worker) readLoop() {
	defer close(w.readerEnd)
	buf := make([]byte, recvBufSize)
	oob := make([]byte, syscall.CmsgSpace(connMax*4)) // room for 16 fds
	for {
		rec, fds, err := receive(w.fd, buf, oob)
		if err == nil {
			var typ uint16
			var entries []entry
			typ, entries, err = decode(rec, len(fds))
			if err != nil {
				closeFDs(fds) // and acknowledge nothing (§6)
			} else {
				switch typ {
				case typeConn:
					w.take(entries, fds)
				case typeStatus:
					w.heartbeat() // every STATUS gets its answer (§5.8)
				case typeDrain:
					// No CONN follows a DRAIN (§5.5). Keep reading:
					// a STATUS still needs its answer.
					w.stopTaking(nil)
				}
				continue
			}
		}
		if err == errEOF {
			err = ErrSupervisorGone
		} else if _, ok := err.(*ProtocolError); !ok {
			err = fmt.Errorf("baton: reading the channel to batond: %w", err)
		}
		w.mu.Lock()
		w.stopTakingLocked(err)
		if !isProtocolError(err) {
			// Nothing can be sent any more. (After a protocol error
			// the channel still works that way: DONEs and heartbeats
			// keep batond's view of this worker right.)
			w.lost = true
			close(w.gone)
		}
		w.mu.Unlock()
		return
	}
}

func isProtocolError(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe)
}

// take handles the connections of one CONN: one ACK for all of them,
// before anything reads, writes or changes the flags of any (§5.3), then
// each becomes a Conn in the Accept queue.
func (w *Worker) take(entries []entry, fds []int) {
	w.mu.Lock()
	if w.lnClosed {
		// The program closed the listener: nobody will serve these.
		// Unacknowledged, they stay batond's, which gives them to another
		// worker once this process has exited (§5.3).
		w.mu.Unlock()
		closeFDs(fds)
		return
	}
	ids := make([]uint64, len(entries))
	for i, e := range entries {
		ids[i] = e.id
	}
	// If this fails, batond is gone and has closed its copies: the
	// connections are this worker's either way.
	w.send(encodeIDs(typeAck, ids))
	w.active += len(entries)
	w.mu.Unlock()

	for i, e := range entries {
		// net.FileConn dups the fd (close-on-exec) and makes it
		// non-blocking for Go's poller, which only now is allowed
		// (§4.1). The received fd is closed; the dup is the connection.
		f := os.NewFile(uintptr(fds[i]), "baton-conn-"+strconv.FormatUint(e.id, 10))
		nc, err := net.FileConn(f)
		f.Close()
		if err != nil {
			log.Printf("baton: connection %d from %s: %v", e.id, e.peer, err)
			w.done(e.id) // acknowledged, so it still needs its DONE
			continue
		}
		c := &Conn{nc: nc, id: e.id, listener: e.listener, peer: e.peer, w: w}
		w.mu.Lock()
		if w.lnClosed {
			w.mu.Unlock()
			c.Close()
			continue
		}
		w.queue = append(w.queue, c)
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// done reports one connection finished: DONE after its ACK, which was
// sent before the Conn existed (§5.4).
func (w *Worker) done(id uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.send(encodeIDs(typeDone, []uint64{id}))
	w.active--
	w.update()
}

// stopTaking: take no more work, for why (nil for a DRAIN). The first
// reason is the one Err reports.
func (w *Worker) stopTaking(why error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopTakingLocked(why)
}

func (w *Worker) stopTakingLocked(why error) {
	if !w.stopping {
		w.stopping = true
		w.err = why
		w.draining.Store(true)
		close(w.stop)
	} else if w.err == nil && why != nil {
		w.err = why // drained, then the channel ended: say so
	}
	w.update()
}

// update closes drained and finished when they are due; w.mu held.
func (w *Worker) update() {
	if w.stopping && len(w.queue) == 0 && !w.isDrained {
		w.isDrained = true
		close(w.drained)
	}
	if w.isDrained && w.active == 0 && !w.isFinished {
		w.isFinished = true
		close(w.finished)
	}
}

func (w *Worker) heartbeat() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.send(encodePair(typeHeartbeat, uint32(w.active), w.capacity))
}

// Listener returns the net.Listener whose Accept returns the connections
// batond hands this worker, as *Conn, already acknowledged. The same
// listener is returned every time; see Listen.
func (w *Worker) Listener() net.Listener { return w.ln }

// Ready tells batond that this worker can take connections, with no
// capacity of its own: batond's capacity = setting for the program applies
// (§4.4, §5.2), within the fd limit. It is ReadyWithCapacity(0).
func (w *Worker) Ready() error { return w.ReadyWithCapacity(0) }

// ReadyWithCapacity sends READY announcing at most n connections open at
// once (0: as many as batond's configuration allows); batond uses the
// smaller of n and the program's capacity = setting. Like libbaton, it
// announces no more than the soft RLIMIT_NOFILE less FDReserve, so that
// every connection batond may send fits in the fd table: with n = 0 that
// limit is what READY carries (a READY of 0 would let batond send up to
// its setting, fds or not), and each HEARTBEAT repeats it. READY goes out
// exactly once: call this when the program is set up; until then batond
// sends no connections, and a worker not ready within the program's
// ready_timeout is stopped (§5.1). From then on a HEARTBEAT goes out every
// second. It returns ErrAlreadyReady the second time, and an error if the
// worker has stopped taking work or READY could not be sent.
func (w *Worker) ReadyWithCapacity(n int) error {
	if n < 0 {
		return fmt.Errorf("baton: negative capacity %d", n)
	}
	capacity := uint32(math.MaxUint32)
	if uint64(n) < math.MaxUint32 {
		capacity = uint32(n)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.ready:
		return ErrAlreadyReady
	case w.stopping && w.err != nil:
		return w.err
	case w.stopping:
		return errors.New("baton: not sending READY: the worker is draining")
	}
	w.capacity = fdCapacity(capacity)
	if err := w.send(encodePair(typeReady, w.capacity, 0)); err != nil {
		return fmt.Errorf("baton: sending READY: %w", err)
	}
	w.ready = true
	if !w.heartbeating {
		w.heartbeating = true
		go w.heartbeats()
	}
	return nil
}

// heartbeats sends a HEARTBEAT at once and then every second until the
// channel ends.
func (w *Worker) heartbeats() {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		w.heartbeat()
		select {
		case <-t.C:
		case <-w.gone:
			return
		}
	}
}

// fdCapacity caps n (0: no cap of its own) to the soft RLIMIT_NOFILE less
// FDReserve (half the limit if it is below twice the reserve; at least 1),
// as libbaton's baton_fd_capacity.
func fdCapacity(n uint32) uint32 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil || rl.Cur == ^uint64(0) {
		return n
	}
	max := rl.Cur / 2
	if rl.Cur > 2*FDReserve {
		max = rl.Cur - FDReserve
	}
	if max < 1 {
		max = 1
	}
	if max > math.MaxUint32 {
		max = math.MaxUint32
	}
	if n != 0 && uint64(n) < max {
		return n
	}
	return uint32(max)
}

// Drained returns a channel that is closed once the worker takes no more
// work and Accept has returned every connection it was given: after batond
// sent DRAIN (§5.5), after the channel to batond closed or broke (§5.6,
// §6; Err says which), or after the program closed the Listener. From then
// on Accept fails with net.ErrClosed. That is the moment to shut the
// server down (see the package documentation); the connections it has
// still need serving: Wait for them.
func (w *Worker) Drained() <-chan struct{} { return w.drained }

// Wait blocks until the worker is drained (Drained) and every connection
// it received has been closed and reported DONE, which is when the program
// should exit. It returns nil after a DRAIN, after the channel to batond
// closed (the program then exits 0, §5.5, §5.6) and after the program
// closed the Listener itself, and otherwise Err: a *ProtocolError or a
// failure to read the channel, for which a non-zero exit status is right.
func (w *Worker) Wait() error {
	<-w.finished
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == ErrSupervisorGone {
		return nil
	}
	return w.err
}

// Err says why the worker stopped taking work: nil while it is taking
// work, after a DRAIN and after the program closed the Listener;
// ErrSupervisorGone once the channel to batond closed; a *ProtocolError
// after a malformed message from batond; or another error if reading the
// channel failed. A drain followed by the channel's end reports how it
// ended.
func (w *Worker) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Active returns how many connections the worker holds: acknowledged and
// not yet closed, whether or not Accept has returned them yet.
func (w *Worker) Active() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.active
}
