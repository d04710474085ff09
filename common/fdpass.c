#include "fdpass.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Older C library headers lack the option.  83 is its number in Linux's
 * include/uapi/asm-generic/socket.h; alpha, mips, parisc and sparc number
 * socket options their own way, so there it stays unknown without headers.
 */
#if !defined(SO_PASSRIGHTS) && !defined(__alpha__) && !defined(__mips__) && \
	!defined(__hppa__) && !defined(__sparc__)
#define SO_PASSRIGHTS 83
#endif

int fdpass_send(int sock, const void *buf, size_t len, const int *fds,
		int nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX)];
	} ctl;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (nfds < 0 || nfds > FDPASS_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (nfds > 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if ((size_t)n != len) { /* cannot happen on SEQPACKET */
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

void fdpass_close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

int fdpass_refuse_fds(int sock)
{
#ifdef SO_PASSRIGHTS
	int off = 0;
	return setsockopt(sock, SOL_SOCKET, SO_PASSRIGHTS, &off, sizeof(off));
#else
	(void)sock;
	errno = ENOPROTOOPT;
	return -1;
#endif
}

ssize_t fdpass_recv(int sock, void *buf, size_t size, int *fds, int *nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX)];
	} ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = size};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	ssize_t n;

	*nfds = 0;
	do
		n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;

	int bad = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
	     c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			bad = 1;
			continue;
		}
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*nfds < FDPASS_MAX)
				fds[(*nfds)++] = fd;
			else
				close(fd), bad = 1;
		}
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		fdpass_close_all(fds, *nfds);
		*nfds = 0;
		errno = EMSGSIZE;
		return -1;
	}
	if (bad) {
		fdpass_close_all(fds, *nfds);
		*nfds = 0;
		errno = EBADMSG;
		return -1;
	}
	if (n == 0 && *nfds == 0) {
		/* SEQPACKET reports an orderly close as a zero-length read. */
		errno = ECONNRESET;
		return -1;
	}
	return n;
}
