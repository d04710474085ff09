/*
 * Descriptor passing over a SOCK_SEQPACKET socket with SCM_RIGHTS.
 * Received fds are close-on-exec (MSG_CMSG_CLOEXEC) and are closed here on
 * every path that does not hand them to the caller.
 */
#ifndef BATON_FDPASS_H
#define BATON_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

#define FDPASS_MAX 16 /* fds in one message; equals PROTO_CONN_MAX */

/*
 * Send one record of len bytes carrying nfds (0..FDPASS_MAX) fds, without
 * blocking.  Returns 0, or -1 with errno (EAGAIN and ETOOMANYREFS mean try
 * again later; anything else means the peer is gone or broken).
 */
int fdpass_send(int sock, const void *buf, size_t len, const int *fds,
		int nfds);

/*
 * Receive one record into buf (size bytes) and up to FDPASS_MAX fds into
 * fds, without blocking.  Returns the record length (>= 0; 0 with *nfds 0
 * may also mean an empty record, so EOF is reported as -1 with errno
 * ECONNRESET), or -1 with errno:
 *   EAGAIN      nothing to read
 *   EMSGSIZE    the record or its fds were truncated (all fds closed)
 *   EBADMSG     unexpected control message (all fds closed)
 *   ECONNRESET  the peer closed the channel
 */
ssize_t fdpass_recv(int sock, void *buf, size_t size, int *fds, int *nfds);

/* Close n fds and set them to -1. */
void fdpass_close_all(int *fds, int n);

/*
 * Make the kernel refuse fds sent to sock (SO_PASSRIGHTS off, Linux 6.16
 * and later): the peer's sendmsg with SCM_RIGHTS then fails with EPERM and
 * nothing reaches sock, so no fd of the peer's choosing is ever closed on
 * this side.  Fds sent the other way are not affected.  Returns 0, or -1
 * with errno (ENOPROTOOPT: the kernel has no such option).
 */
int fdpass_refuse_fds(int sock);

#endif
