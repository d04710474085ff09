// Command goworker is a baton worker in Go: a small HTTP/1.1 server for
// the client connections batond hands it, built on the package in
// worker/go (import "baton.example/baton", standard library only).
//
// The package does the protocol (worker/PROTOCOL.md): it acknowledges each
// connection as it arrives and returns it from a net.Listener, sends DONE
// when net/http closes one, answers STATUS and sends a HEARTBEAT every
// second, and on DRAIN or channel EOF stops taking work. This program
// serves, says what happens on stderr, and exits 0 once drained and every
// connection is finished (1 after a malformed message from batond, once
// the connections it has are finished).
//
// GET or HEAD of / answers 200 "hello from go\n" with the headers
// X-Baton-Pid and X-Baton-Generation; other paths 404, other methods 405.
//
// Draining never races a client: baton.CloseOnDrain answers each request
// after the drain with "Connection: close", so a kept-alive connection is
// closed only right after such a response. Idle ones stay open until the
// client leaves, the idle timeout ends them, or the worker has to exit:
// the stop signal batond sends after drain_timeout (§5.7) is left at its
// default action, which ends the process and with it every connection.
//
// Build and run (Go 1.19 or later; go.mod points at ../../go, so nothing
// is downloaded):
//
//	cd worker/examples/go_worker && go build -o /usr/local/bin/goworker .
//
//	[program:go]
//	command = /usr/local/bin/goworker
package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"baton.example/baton"
)

const (
	capacity    = 64 // announced in READY: at most this many connections at once
	idleTimeout = 75 * time.Second
	body        = "hello from go\n"
)

type handler struct{ pid, gen string }

func (h handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	hd := rw.Header()
	hd.Set("X-Baton-Pid", h.pid)
	hd.Set("X-Baton-Generation", h.gen)
	status, text := http.StatusOK, body
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		status = http.StatusMethodNotAllowed
		hd.Set("Allow", "GET, HEAD")
	case r.URL.Path != "/":
		status = http.StatusNotFound
	}
	if status != http.StatusOK {
		text = fmt.Sprintf("%d %s\n", status, http.StatusText(status))
	}
	hd.Set("Content-Type", "text/plain")
	hd.Set("Content-Length", strconv.Itoa(len(text)))
	rw.WriteHeader(status)
	io.WriteString(rw, text) // net/http drops the body of a HEAD response
}

func main() {
	log.SetFlags(0)
	log.SetPrefix(fmt.Sprintf("goworker[%d]: ", os.Getpid()))

	ln, err := baton.Listen() // the channel on $BATON_FD (fd 3)
	if err != nil {
		log.Printf("%v: run me under batond", err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler:           baton.CloseOnDrain(handler{strconv.Itoa(os.Getpid()), os.Getenv("BATON_GENERATION")}),
		IdleTimeout:       idleTimeout, // a kept-alive connection's wait for its next request
		ReadHeaderTimeout: idleTimeout,
		MaxHeaderBytes:    16 << 10,
	}
	if err := baton.ReadyWithCapacity(capacity); err != nil {
		log.Print(err)
		os.Exit(1)
	}
	srv.Serve(ln) // returns once drained: no more connections will come

	<-baton.Drained()
	var perr *baton.ProtocolError
	switch err := baton.Err(); {
	case err == nil:
		log.Printf("draining: %d connections open", baton.Active())
	case err == baton.ErrSupervisorGone:
		log.Printf("channel closed: batond is gone; finishing %d connections", baton.Active())
	case errors.As(err, &perr):
		log.Printf("%v; finishing %d connections", err, baton.Active())
	default:
		log.Printf("channel lost (%v); finishing %d connections", err, baton.Active())
	}
	if err := baton.Wait(); err != nil { // every connection finished
		log.Printf("exiting: %v", err)
		os.Exit(1)
	}
	log.Print("drained: exiting")
}
