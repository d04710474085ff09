/*
 * systemd socket activation: listening sockets inherited from the service
 * manager as fds 3.. with $LISTEN_PID, $LISTEN_FDS and $LISTEN_FDNAMES
 * (sd_listen_fds(3) convention).  A listener with `address = systemd:NAME`
 * (or `systemd`, meaning its own name) adopts the socket called NAME
 * instead of binding one.
 */
#ifndef BATON_ACTIVATION_H
#define BATON_ACTIVATION_H

#include <stddef.h>

/* Collect the inherited sockets (and unset the variables so workers do
 * not see them); 0, or -1 with err when the variables are malformed. */
int activation_init(char *err, size_t errlen);
/* The socket named name, taken once: a listening stream socket fd, or -1
 * with err (no such socket, already taken, not listening...). */
int activation_take(const char *name, char *err, size_t errlen);
/* How many inherited sockets there are (taken or not). */
int activation_count(void);
/* Close the inherited sockets no listener adopted (logged). */
void activation_close_unused(void);

#endif
