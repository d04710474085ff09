/*
 * What batond does with fds a worker sends on its channel.
 *
 * Workers never send fds, and a close() of one a hostile worker chose can
 * block for as long as it likes (a TCP socket with SO_LINGER and unsent
 * data, a file on a FUSE mount), which would stall batond's whole event
 * loop.  So each channel asks the kernel to refuse them (SO_PASSRIGHTS,
 * Linux 6.16 and later): the worker's sendmsg fails and batond never holds
 * such an fd.  Where the kernel cannot, the first channel starts one closer
 * thread whose only job is to close the fds read_channel rejects.
 *
 * The closer's queue is bounded (CLOSER_QUEUE_MAX, and at most a quarter
 * of RLIMIT_NOFILE), because every fd waiting in it is one batond cannot
 * use for clients.  When it is full the fds are closed on the caller's
 * thread, as they were before the closer existed: the worker is failed for
 * sending them either way, and a stalled loop is then preferred to running
 * out of descriptors for good.
 *
 * Left to the kernel on that fallback path: fds beyond the control buffer
 * of fdpass_recv (MSG_CTRUNC) and fds in records still queued when a failed
 * worker's channel is closed are released in batond's thread.
 */
#ifndef BATON_CLOSER_H
#define BATON_CLOSER_H

#define CLOSER_QUEUE_MAX 1024

/* Make a new worker channel (batond's end) refuse fds; the first time the
 * kernel cannot, start the closer thread.  Never fails: it logs. */
void closer_guard_channel(int chan);

/* Close n fds and set them to -1, through the closer thread once it runs
 * (never blocking the caller then), otherwise here. */
void closer_close_all(int *fds, int n);

/* Start the closer thread (once); 0, or -1 with errno. */
int closer_start(void);

/* Fds handed to the thread and not closed yet. */
int closer_pending(void);

#endif
