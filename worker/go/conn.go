package baton

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// listener is the net.Listener of a Worker: Accept returns the
// connections from CONN messages instead of calling accept(2).
type listener struct{ w *Worker }

// addr is the listener's address: batond's listeners are many and are
// batond's, so it names the channel instead.
func addr() net.Addr { return &net.UnixAddr{Name: "baton", Net: "unixpacket"} }

func errClosed(op string) error {
	return &net.OpError{Op: op, Net: "baton", Addr: addr(), Err: net.ErrClosed}
}

// Accept returns the next connection batond handed over, a *Conn that is
// already acknowledged. Once the worker takes no more work (a DRAIN, the
// channel's end, or Close) it still returns the connections received
// before that, then fails with an error that matches net.ErrClosed.
func (l *listener) Accept() (net.Conn, error) {
	w := l.w
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			c := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			if len(w.queue) > 0 { // another Accept may be waiting
				select {
				case w.wake <- struct{}{}:
				default:
				}
			}
			w.update()
			w.mu.Unlock()
			return c, nil
		}
		stopped := w.stopping
		w.mu.Unlock()
		if stopped {
			return nil, errClosed("accept")
		}
		select {
		case <-w.wake:
		case <-w.stop:
		}
	}
}

// Close stops the listener, and with it the worker: it takes no more
// work, as after a DRAIN. Connections already acknowledged that Accept has
// not returned are closed (and reported DONE), so close it only once
// Drained is closed, as http.Server.Shutdown does in the recommended
// pattern. Connections batond sends after Close are not acknowledged:
// batond gives them to another worker once this process has exited.
func (l *listener) Close() error {
	w := l.w
	w.mu.Lock()
	if w.lnClosed {
		w.mu.Unlock()
		return errClosed("close")
	}
	w.lnClosed = true
	queued := w.queue
	w.queue = nil
	w.stopTakingLocked(nil)
	w.mu.Unlock()
	for _, c := range queued {
		c.Close()
	}
	return nil
}

// Addr returns a placeholder: the addresses clients connect to are
// batond's listeners (Conn.ListenerName says which one).
func (l *listener) Addr() net.Addr { return addr() }

// Conn is a client connection batond handed to this worker: a TCP or Unix
// stream socket that batond accepted. Closing it tells batond the
// connection is finished (DONE, §5.4), once, however many times and from
// however many goroutines it is closed; until every Conn is closed the
// worker is not done (Wait).
type Conn struct {
	nc       net.Conn // *net.TCPConn or *net.UnixConn
	id       uint64
	listener string
	peer     string
	w        *Worker
	once     sync.Once
}

// ID returns the connection's id, unique for the life of the batond
// process (§4.1).
func (c *Conn) ID() uint64 { return c.id }

// ListenerName returns the name of the batond listener that accepted the
// connection: NAME in its [listener:NAME] section.
func (c *Conn) ListenerName() string { return c.listener }

// Peer returns the client's address as batond wrote it: "1.2.3.4:5678",
// "[::1]:5678", or "unix" for a Unix-socket listener.
func (c *Conn) Peer() string { return c.peer }

// NetConn returns the underlying *net.TCPConn or *net.UnixConn, for its
// socket options. Close the Conn, not it: closing it directly would leave
// the connection unreported, and the worker waiting for it.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Read reads from the connection, as net.Conn.
func (c *Conn) Read(b []byte) (int, error) { return c.nc.Read(b) }

// Write writes to the connection, as net.Conn.
func (c *Conn) Write(b []byte) (int, error) { return c.nc.Write(b) }

// Close closes the connection and, the first time, reports it DONE to
// batond.
func (c *Conn) Close() error {
	err := c.nc.Close()
	c.once.Do(func() { c.w.done(c.id) })
	return err
}

// CloseWrite shuts down the writing side of the connection (net/http uses
// it to let a client read a final response before the connection closes).
// It does not report the connection finished: Close does.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("baton: CloseWrite not supported")
}

// CloseRead shuts down the reading side of the connection.
func (c *Conn) CloseRead() error {
	if cr, ok := c.nc.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errors.New("baton: CloseRead not supported")
}

// ReadFrom copies from r to the connection, with the underlying
// connection's ReadFrom (sendfile, splice) when it has one, as net/http
// uses it.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.nc.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.nc}, r)
}

// LocalAddr returns the local address of the connection, as net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the remote address of the connection, as net.Conn
// (for a Unix-socket listener it is usually unnamed; see Peer).
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetDeadline sets the read and write deadlines, as net.Conn.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// SetReadDeadline sets the read deadline, as net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline, as net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }
