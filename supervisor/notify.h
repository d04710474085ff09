/*
 * systemd's notify protocol, spoken directly (no libsystemd): one datagram
 * per state change to the AF_UNIX socket named by $NOTIFY_SOCKET.
 *
 *   READY=1           listeners open and every program at full count RUNNING
 *                     (once at start-up, and again after each reload)
 *   RELOADING=1       with MONOTONIC_USEC=, when a reload starts applying
 *   STOPPING=1        when the shutdown begins
 *   STATUS=...        worker counts, whenever they change
 *   WATCHDOG=1        every WATCHDOG_USEC/2 when systemd asks for it
 *
 * Without $NOTIFY_SOCKET every call does nothing.
 */
#ifndef BATON_NOTIFY_H
#define BATON_NOTIFY_H

/* Read and unset NOTIFY_SOCKET / WATCHDOG_* (workers must not inherit
 * them) and start the watchdog timer; 0, or -1 with err (a bad value). */
int notify_init(char *err, size_t errlen);
/* The pool changed: send READY=1 the first time everything is up, and a
 * new STATUS= line when the counts changed. */
void notify_pool_changed(void);
/* A reload starts applying changes / is over (whatever its outcome). */
void notify_reloading(void);
void notify_reloaded(void);
void notify_stopping(void);
void notify_close(void);

#endif
