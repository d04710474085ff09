package baton

import "net/http"

// CloseOnDrain wraps h so that once the worker is draining, every response
// says "Connection: close" and net/http closes the connection after it.
// Each kept-alive connection then ends right after its next request is
// answered, as PROTOCOL.md §5.5 asks: the drain never closes a connection
// under a request its client may already have sent. A request that started
// before the drain is answered as usual, and its connection closes after
// the one that follows. A connection idle at the drain stays open until
// its client sends that next request or closes it, or the http.Server's
// IdleTimeout ends it; without one, batond's drain_timeout ends it with
// the stop signal.
func (w *Worker) CloseOnDrain(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.draining.Load() {
			rw.Header().Set("Connection", "close")
		}
		h.ServeHTTP(rw, r)
	})
}
