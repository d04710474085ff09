/* systemd socket activation: see activation.h. */
#include "activation.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define SD_LISTEN_FDS_START 3
#define ACTIVATION_MAX 64

static struct {
	int n;
	int fd[ACTIVATION_MAX];
	char name[ACTIVATION_MAX][256];
	int taken[ACTIVATION_MAX];
} act;

static int parse_uint(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		return -1;
	*out = v;
	return 0;
}

int activation_init(char *err, size_t errlen)
{
	const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	long pid, n;
	int rc = 0;

	if (!fds_s || !*fds_s)
		goto done;
	if (!pid_s || parse_uint(pid_s, &pid) < 0) {
		snprintf(err, errlen, "LISTEN_FDS is set but LISTEN_PID is not a pid: '%s'",
			 pid_s ? pid_s : "");
		rc = -1;
		goto done;
	}
	if (pid != (long)getpid()) {
		log_info("socket activation: LISTEN_PID=%ld is not us (pid %d): ignoring LISTEN_FDS", pid,
			 (int)getpid());
		goto done;
	}
	if (parse_uint(fds_s, &n) < 0 || n > ACTIVATION_MAX) {
		snprintf(err, errlen, "LISTEN_FDS: want a number of fds 0..%d, got '%s'", ACTIVATION_MAX,
			 fds_s);
		rc = -1;
		goto done;
	}
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		if (fcntl(fd, F_GETFD) < 0) {
			snprintf(err, errlen, "LISTEN_FDS=%ld but fd %d is not open", n, fd);
			rc = -1;
			goto done;
		}
		fcntl(fd, F_SETFD, FD_CLOEXEC); /* workers must not inherit them */
		act.fd[i] = fd;
		snprintf(act.name[i], sizeof(act.name[i]), "unknown"); /* systemd's default */
	}
	act.n = (int)n;
	/* LISTEN_FDNAMES: colon-separated, one per fd (FileDescriptorName=). */
	if (names && *names) {
		const char *p = names;
		int i = 0;
		for (; i < act.n && p; i++) {
			const char *colon = strchr(p, ':');
			size_t len = colon ? (size_t)(colon - p) : strlen(p);
			if (len >= sizeof(act.name[i]))
				len = sizeof(act.name[i]) - 1;
			memcpy(act.name[i], p, len);
			act.name[i][len] = '\0';
			p = colon ? colon + 1 : NULL;
		}
		if (i != act.n || p) {
			snprintf(err, errlen, "LISTEN_FDNAMES has %s names than LISTEN_FDS=%d",
				 p ? "more" : "fewer", act.n);
			rc = -1;
			goto done;
		}
	}
	for (int i = 0; i < act.n; i++)
		log_info("socket activation: inherited fd=%d name=%s", act.fd[i], act.name[i]);
done:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (rc < 0) {
		for (int i = 0; i < act.n; i++)
			close(act.fd[i]);
		act.n = 0;
	}
	return rc;
}

int activation_take(const char *name, char *err, size_t errlen)
{
	for (int i = 0; i < act.n; i++) {
		int type = 0, listening = 0;
		socklen_t len = sizeof(type);
		if (strcmp(act.name[i], name) != 0)
			continue;
		if (act.taken[i]) {
			snprintf(err, errlen, "systemd socket '%s' is already used by another listener",
				 name);
			return -1;
		}
		if (getsockopt(act.fd[i], SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
		    type != SOCK_STREAM) {
			snprintf(err, errlen, "systemd socket '%s' (fd %d) is not a stream socket", name,
				 act.fd[i]);
			return -1;
		}
		len = sizeof(listening);
		if (getsockopt(act.fd[i], SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
		    !listening) {
			snprintf(err, errlen, "systemd socket '%s' (fd %d) is not listening", name,
				 act.fd[i]);
			return -1;
		}
		act.taken[i] = 1;
		return act.fd[i];
	}
	if (act.n == 0)
		snprintf(err, errlen, "no socket '%s' from systemd: batond was not socket-activated "
			 "(no LISTEN_FDS)", name);
	else
		snprintf(err, errlen, "no socket '%s' among the %d passed by systemd (LISTEN_FDNAMES)",
			 name, act.n);
	return -1;
}

int activation_count(void)
{
	return act.n;
}

void activation_close_unused(void)
{
	for (int i = 0; i < act.n; i++)
		if (!act.taken[i]) {
			log_warn("socket activation: no listener uses fd=%d name=%s; closing it",
				 act.fd[i], act.name[i]);
			close(act.fd[i]);
			act.taken[i] = 1;
		}
}
