package baton_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"time"

	"baton.example/baton"
)

// An HTTP worker that lets every kept-alive connection end after its next
// response once it is drained.
func Example() {
	ln, err := baton.Listen()
	if err != nil {
		log.Fatal(err) // not started by batond
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello\n")
	})
	srv := &http.Server{Handler: baton.CloseOnDrain(handler), IdleTimeout: time.Minute}
	if err := baton.Ready(); err != nil {
		log.Fatal(err)
	}
	srv.Serve(ln) // returns once drained
	if err := baton.Wait(); err != nil {
		log.Fatal(err) // a protocol error: exit non-zero
	}
}

// An HTTP worker that closes idle connections as soon as it is drained.
func Example_shutdown() {
	ln, err := baton.Listen()
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir("/srv/www"))}
	go func() {
		<-baton.Drained()
		srv.Shutdown(context.Background())
	}()
	if err := baton.ReadyWithCapacity(256); err != nil {
		log.Fatal(err)
	}
	srv.Serve(ln)
	if err := baton.Wait(); err != nil {
		log.Fatal(err)
	}
}

// A worker that is not HTTP: an echo server.
func ExampleListen() {
	ln, err := baton.Listen()
	if err != nil {
		log.Fatal(err)
	}
	if err := baton.Ready(); err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept() // fails once drained
		if err != nil {
			break
		}
		go func() {
			defer c.Close() // reports the connection DONE to batond
			io.Copy(c, c)
		}()
	}
	if err := baton.Wait(); err != nil {
		log.Fatal(err)
	}
}
