// Package baton makes a Go program a baton worker.
//
// batond, baton's supervisor, accepts every client connection itself and
// hands it to one of its worker processes over a channel the worker
// inherits as fd 3 ($BATON_FD). This package speaks the worker side of
// that protocol (worker/PROTOCOL.md in the baton repository; the §
// numbers below point into it), with the standard library only: it
// acknowledges each connection as soon as it arrives, before anything
// reads from it (§5.3), returns it from a net.Listener, reports it to
// batond when it is closed (§5.4), answers batond's STATUS and sends a
// HEARTBEAT every second (§5.8), and tells the program when to drain
// (§5.5, §5.6).
//
// An HTTP worker:
//
//	func main() {
//		ln, err := baton.Listen() // the connections batond hands over
//		if err != nil {
//			log.Fatal(err) // not started by batond
//		}
//		srv := &http.Server{Handler: baton.CloseOnDrain(handler), IdleTimeout: time.Minute}
//		baton.Ready()  // set up: send connections
//		srv.Serve(ln)  // returns once batond asks this worker to drain
//		if err := baton.Wait(); err != nil { // every connection finished
//			log.Fatal(err)
//		}
//	}
//
// and in batond's configuration:
//
//	[program:web]
//	command = /usr/local/bin/web
//
// # Readiness
//
// batond sends no connection before READY, and stops a worker that has not
// sent it within the program's ready_timeout (§5.1). Ready sends it, with
// no capacity of its own, so the program's capacity = setting applies
// (within the process's fd limit); ReadyWithCapacity announces a lower
// one. Call it once the program can serve: nothing is sent until it does. Connections that arrive before the first Accept wait
// for it, already acknowledged.
//
// # Draining
//
// batond drains a worker when it retires it (an upgrade, a restart, scale
// down, its own shutdown): it sends DRAIN and no more connections. The
// worker must finish the connections it has and exit 0 (§5.5); batond
// sends the stop signal after drain_timeout. The same holds when batond
// dies: the channel reads end-of-file and the worker carries on alone
// with what it has (§5.6).
//
// Drained is closed then, once Accept has returned every connection
// received before; after that Accept fails with net.ErrClosed, so
// http.Server.Serve returns. Serve returning does not end the connections
// it serves: Wait returns once all are closed, and the program should
// exit then, not before. There are two ways to end kept-alive HTTP
// connections:
//
//   - CloseOnDrain, as above, which is the rule of §5.5: each connection
//     is closed right after its next response, which says "Connection:
//     close", so the drain never closes a connection under a request the
//     client may already have sent. A connection idle at the drain lasts
//     until its client's next request or until the client leaves; the
//     server's IdleTimeout, the usual keep-alive limit, bounds that wait,
//     and drain_timeout bounds it anyway.
//
//   - http.Server.Shutdown once Drained is closed: responses to requests
//     in progress say "Connection: close", and idle connections are closed
//     at once. The worker exits sooner, but a request a client sends on an
//     idle connection just as it closes meets a closed socket, and the
//     client cannot tell whether it was served (§5.5 advises against it;
//     HTTP clients retry idempotent requests, not others).
//
// Shutdown goes with the same main:
//
//	go func() {
//		<-baton.Drained()
//		srv.Shutdown(context.Background())
//	}()
//
// With Shutdown, Serve returns http.ErrServerClosed, or net.ErrClosed if
// Accept failed first; either is the end of serving, not a failure.
//
// Connections that are not HTTP are the same: Accept until it fails, and
// close each Conn when done with it. Closing the Listener yourself stops
// the worker as a DRAIN does, but connections still queued for Accept are
// closed with it, so close it only once Drained is closed. batond sends no
// connection after DRAIN (§5.5); should one come after the Listener is
// closed, nobody could serve it, so it is not acknowledged and batond
// gives it to another worker once this process has exited.
//
// # Errors
//
// Wait returns nil after a DRAIN or batond's end, and the program exits 0.
// A malformed message from batond (§6) stops the worker taking work too:
// its fds are closed, nothing in it is acknowledged, the channel is read no
// more, and once the open connections are finished Wait returns a
// *ProtocolError; exit non-zero then. Err says at any time why the worker
// stopped taking work.
//
// Writing to stdout or stderr after batond died fails with EPIPE instead
// of killing the program: opening the channel has SIGPIPE delivered to a
// channel nobody reads (§5.6).
package baton
