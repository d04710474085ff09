package baton

import (
	"net"
	"net/http"
	"sync"
)

var (
	defaultOnce   sync.Once
	defaultWorker *Worker
	defaultErr    error
	never         = make(chan struct{}) // never closed
)

// Default returns the worker for this process's channel to batond, opened
// by Open the first time it is called. The package-level functions use it.
func Default() (*Worker, error) {
	defaultOnce.Do(func() { defaultWorker, defaultErr = Open() })
	return defaultWorker, defaultErr
}

// Listen returns the net.Listener whose Accept returns the connections
// batond hands this worker, each a *Conn, acknowledged before Accept
// returns it. After a drain Accept fails with net.ErrClosed. Listen fails
// when the process has no channel to batond: errors.Is(err, ErrNoChannel)
// when BATON_FD is not set at all, for a program that can also run on
// its own (net.Listen instead).
func Listen() (net.Listener, error) {
	w, err := Default()
	if err != nil {
		return nil, err
	}
	return w.Listener(), nil
}

// Ready sends READY with no capacity of its own, so batond's setting for
// the program applies: see Worker.Ready.
func Ready() error { return ReadyWithCapacity(0) }

// ReadyWithCapacity sends READY announcing at most n connections at once:
// see Worker.ReadyWithCapacity.
func ReadyWithCapacity(n int) error {
	w, err := Default()
	if err != nil {
		return err
	}
	return w.ReadyWithCapacity(n)
}

// Drained returns a channel closed when the worker is to stop taking work:
// see Worker.Drained. Without a channel to batond it is never closed.
func Drained() <-chan struct{} {
	w, err := Default()
	if err != nil {
		return never
	}
	return w.Drained()
}

// Wait blocks until the worker is drained and all its connections are
// closed, then returns nil, or the error that calls for a non-zero exit
// status: see Worker.Wait. Without a channel to batond it returns Open's
// error at once.
func Wait() error {
	w, err := Default()
	if err != nil {
		return err
	}
	return w.Wait()
}

// Err says why the worker stopped taking work: see Worker.Err. Without a
// channel to batond it returns Open's error.
func Err() error {
	w, err := Default()
	if err != nil {
		return err
	}
	return w.Err()
}

// Active returns how many connections the worker holds: see
// Worker.Active. Without a channel to batond it is 0.
func Active() int {
	w, err := Default()
	if err != nil {
		return 0
	}
	return w.Active()
}

// CloseOnDrain wraps h so that responses say "Connection: close" once the
// worker is draining: see Worker.CloseOnDrain. Without a channel to batond
// it returns h.
func CloseOnDrain(h http.Handler) http.Handler {
	w, err := Default()
	if err != nil {
		return h
	}
	return w.CloseOnDrain(h)
}
