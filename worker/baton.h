/*
 * libbaton: the worker side of baton's worker protocol (worker/PROTOCOL.md).
 *
 * A worker inherits its channel to batond on the fd named in $BATON_FD.
 * libbaton receives connections on it, acknowledges each one on receipt
 * (before the callback runs), and reports readiness, finished connections
 * and load.  Two ways to drive it:
 *
 *   - libevent: baton_attach() registers the channel on an event_base and
 *     runs everything from there (including a heartbeat every second).
 *   - your own loop: poll baton_fd() for reading and call baton_process()
 *     when it is readable; call baton_heartbeat() now and then.
 *
 * All functions return 0 on success or -1 with errno set, unless said.
 */
#ifndef BATON_H
#define BATON_H

#include <stdint.h>

struct baton;
struct event_base;

struct baton_conn {
	int fd;               /* the client connection, now owned by the worker */
	uint64_t id;          /* pass to baton_done() when the connection ends */
	const char *listener; /* listener name from the config */
	const char *peer;     /* "1.2.3.4:5", "[::1]:5" or "unix" */
};

struct baton_callbacks {
	/* A connection arrived; it is already acknowledged. Required. */
	void (*conn)(struct baton *b, const struct baton_conn *c, void *arg);
	/*
	 * The supervisor asked us to drain (or went away): take no more work,
	 * finish what is open, then exit.  Optional: without it the worker
	 * exits once its last connection is done.
	 */
	void (*drain)(struct baton *b, void *arg);
};

/*
 * Open the channel named by $BATON_FD (or fd if >= 0).  Returns NULL with
 * errno set when there is no channel (ENOENT: not started by batond).
 */
struct baton *baton_open(int fd, const struct baton_callbacks *cb, void *arg);
void baton_free(struct baton *b);

/*
 * Tell the supervisor we can take connections; capacity 0 = its default.
 * The capacity announced is capped by baton_fd_capacity(), so that every
 * connection the supervisor may hand over fits under RLIMIT_NOFILE.
 */
int baton_ready(struct baton *b, uint32_t capacity);
/*
 * capacity (0: no limit of its own) capped to the soft RLIMIT_NOFILE less
 * BATON_FD_RESERVE descriptors for everything else the worker opens (half
 * the limit if it is lower than twice the reserve; at least 1).
 */
#define BATON_FD_RESERVE 32
uint32_t baton_fd_capacity(uint32_t capacity);
/*
 * A connection ended (the worker has closed or will close its fd).  In
 * libevent mode the DONE goes out at the end of this loop iteration, with
 * every other connection that ended in it; in own-loop mode, at once.
 */
int baton_done(struct baton *b, uint64_t id);
/* Number of connections received and not yet done. */
uint32_t baton_active(const struct baton *b);
/* True once a drain was asked for or the supervisor went away. */
int baton_draining(const struct baton *b);

/* libevent mode. */
int baton_attach(struct baton *b, struct event_base *base);

/* Own-loop mode. */
int baton_fd(const struct baton *b);
/*
 * Read and handle every message waiting on the channel.  Returns 0, or -1
 * when the channel is closed or broken (the drain callback has then run).
 */
int baton_process(struct baton *b);
int baton_heartbeat(struct baton *b);

/* Environment set by batond, parsed; NULL / -1 when absent. */
const char *baton_program(void);
int baton_worker_slot(void);
int baton_generation(void);

#endif
