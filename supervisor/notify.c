/* systemd's notify protocol: see notify.h. */
#include <errno.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "batond.h"
#include "log.h"
#include "notify.h"
#include "pool.h"
#include "report.h"
#include "util.h"

static struct {
	int fd;
	struct sockaddr_un addr;
	socklen_t addrlen;
	int ready_sent, reloading;
	char status[512];
	uint64_t watchdog_usec;
	struct event *ev_watchdog;
} nt = {.fd = -1};

static void send_text(const char *text)
{
	if (nt.fd < 0)
		return;
	if (sendto(nt.fd, text, strlen(text), MSG_NOSIGNAL, (struct sockaddr *)&nt.addr,
		   nt.addrlen) < 0)
		log_debug("notify: cannot send to NOTIFY_SOCKET: %s", strerror(errno));
}

static void watchdog_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	send_text("WATCHDOG=1");
}

int notify_init(char *err, size_t errlen)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *usec = getenv("WATCHDOG_USEC"), *wpid = getenv("WATCHDOG_PID");
	int rc = 0;

	if (path && *path) {
		size_t len = strlen(path);
		memset(&nt.addr, 0, sizeof(nt.addr));
		nt.addr.sun_family = AF_UNIX;
		if ((path[0] != '/' && path[0] != '@') || len >= sizeof(nt.addr.sun_path)) {
			snprintf(err, errlen, "NOTIFY_SOCKET: want an absolute path or @abstract name "
				 "shorter than %zu bytes, got '%s'", sizeof(nt.addr.sun_path), path);
			rc = -1;
		} else {
			memcpy(nt.addr.sun_path, path, len);
			if (path[0] == '@')
				nt.addr.sun_path[0] = '\0'; /* abstract namespace */
			nt.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
						 (path[0] == '@' ? 0 : 1));
			nt.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (nt.fd < 0) {
				snprintf(err, errlen, "NOTIFY_SOCKET: socket: %s", strerror(errno));
				rc = -1;
			}
		}
	}
	if (rc == 0 && nt.fd >= 0 && usec && *usec) {
		char *end;
		unsigned long long v;
		errno = 0;
		v = strtoull(usec, &end, 10);
		if (errno || *end || v == 0) {
			snprintf(err, errlen, "WATCHDOG_USEC: want a positive number, got '%s'", usec);
			rc = -1;
		} else if (!wpid || !*wpid || strtol(wpid, NULL, 10) == (long)getpid()) {
			nt.watchdog_usec = v;
			nt.ev_watchdog = event_new(batond.base, -1, EV_PERSIST, watchdog_tick, NULL);
			struct timeval tv = {(time_t)(v / 2 / 1000000), (suseconds_t)(v / 2 % 1000000)};
			if (!nt.ev_watchdog || event_add(nt.ev_watchdog, &tv) < 0) {
				snprintf(err, errlen, "cannot start the watchdog timer");
				rc = -1;
			}
		}
	}
	/* The workers must not talk to systemd in batond's name. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (rc == 0 && nt.fd >= 0)
		log_info("notify: systemd notify socket=%s watchdog_ms=%llu", path,
			 (unsigned long long)(nt.watchdog_usec / 1000));
	return rc;
}

static void send_status(int ready)
{
	char line[sizeof(nt.status) + 32], status[sizeof(nt.status)];

	report_readiness(status, sizeof(status));
	if (!ready && strcmp(status, nt.status) == 0)
		return;
	snprintf(nt.status, sizeof(nt.status), "%s", status);
	snprintf(line, sizeof(line), "%sSTATUS=%s", ready ? "READY=1\n" : "", status);
	send_text(line);
}

void notify_pool_changed(void)
{
	char status[sizeof(nt.status)];

	if (nt.fd < 0 || batond.shutting_down)
		return;
	if (!nt.ready_sent && report_readiness(status, sizeof(status))) {
		nt.ready_sent = 1;
		send_status(1);
		return;
	}
	send_status(0);
}

void notify_reloading(void)
{
	struct timespec ts;
	char line[96];

	if (nt.fd < 0 || nt.reloading)
		return;
	nt.reloading = 1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(line, sizeof(line), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	send_text(line);
}

void notify_reloaded(void)
{
	if (nt.fd < 0 || !nt.reloading)
		return;
	nt.reloading = 0;
	send_status(1);
}

void notify_stopping(void)
{
	send_text("STOPPING=1\nSTATUS=draining workers");
}

void notify_close(void)
{
	if (nt.ev_watchdog)
		event_free(nt.ev_watchdog);
	nt.ev_watchdog = NULL;
	if (nt.fd >= 0)
		close(nt.fd);
	nt.fd = -1;
}
