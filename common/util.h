/* Small helpers both sides share: parsing, fd flags, clocks. */
#ifndef BATON_UTIL_H
#define BATON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Parse "500ms", "10s", "2m", "1h" (or "0") into milliseconds; 0 or -1. */
int util_parse_duration(const char *s, uint64_t *ms);
/* Format ms the way util_parse_duration reads it. */
void util_format_duration(uint64_t ms, char *buf, size_t size);
/* Parse a whole decimal number in [min, max]; 0 or -1. */
int util_parse_int(const char *s, long long min, long long max,
		   long long *out);
/* yes/no, true/false, on/off, 1/0; 0 or -1. */
int util_parse_bool(const char *s, int *out);
/* Octal file mode such as 0660; 0 or -1. */
int util_parse_mode(const char *s, unsigned *out);

/* ADDR_SYSTEMD: a socket inherited by socket activation (supervisor only). */
enum addr_kind { ADDR_TCP, ADDR_UNIX, ADDR_SYSTEMD };

struct addr {
	enum addr_kind kind;
	struct sockaddr_storage ss;
	socklen_t len;
};

/*
 * Parse a listener address: "tcp:HOST:PORT", "tcp:[V6]:PORT", "[V6]:PORT"
 * or "unix:/abs/path".  HOST is a numeric IPv4 address, "localhost" or "*"
 * (any IPv4 address).  Returns 0, or -1 with a reason in err.
 */
int addr_parse(const char *s, struct addr *a, char *err, size_t errlen);
/* The first len bytes of s into buf (size bytes), NUL-terminated, cut to fit. */
void copy_cut(char *buf, size_t size, const char *s, size_t len);
/* "127.0.0.1:80", "[::1]:80", "unix:/path"; never fails (truncates). */
void addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
		 size_t size);

/* Copy in to out (size bytes) with every "%(here)s" replaced by here, the
 * config file's directory (a real path), and "/.." or "/." right after it
 * resolved ("%(here)s/../run" is here's parent's run); 0, or -1 if it does
 * not fit. */
int util_expand_here(const char *here, const char *in, char *out, size_t size);

int fd_set_nonblock(int fd);
int fd_set_cloexec(int fd);
/* Open /dev/null on whichever of fds 0, 1 and 2 is closed, so that no
 * file or socket opened later lands there: written to as stdout or
 * stderr, or given to a child as one.  0, or -1 with errno. */
int fd_open_std(void);
/* Close n distinct open fds; fds is sorted in place.  Each run of
 * consecutive numbers goes in one close_range() (Linux 5.9), one close()
 * per fd where the kernel lacks it.  Errors are ignored, as after close(). */
void fd_close_all(int *fds, int n);

/* Milliseconds / microseconds on the monotonic clock. */
uint64_t now_ms(void);
/* A wait status as "exit=N", "signal=NAME" or "status=0x..". */
void util_describe_status(int status, char *buf, size_t size);
uint64_t now_us(void);

#endif
