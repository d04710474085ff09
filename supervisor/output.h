/*
 * Workers' stdout and stderr (the `stdout` / `stderr` keys of a program):
 *
 *   log       (default) a pipe batond reads; each line goes to batond's log
 *             as "web:0 stdout: LINE"
 *   inherit   batond's own stdout / stderr, untouched
 *   /path     a pipe batond reads; each line is appended to that file with a
 *             timestamp and the "web:0 stdout:" prefix (reopened on SIGUSR1)
 *
 * The file is opened by log_open_append(): batond is usually root and the
 * worker may own the directory, so a symlink, anything but a regular file,
 * a file with more than one link or one owned by another user is refused
 * (logged), and the lines go to batond's log instead, as when the file
 * cannot be opened; on SIGUSR1 the stream keeps its old file.
 *
 * Lines are cleaned with log_sanitize() (controls and bytes that are not
 * UTF-8 become '?'), whatever the destination.
 *
 * batond never blocks on a worker's output: the pipe is read without
 * blocking, at most OUTPUT_READ_MAX bytes per wakeup, lines are cut at
 * OUTPUT_LINE_MAX bytes, and beyond OUTPUT_RATE lines a second per stream
 * lines are dropped and counted (a summary line says how many).
 */
#ifndef BATON_OUTPUT_H
#define BATON_OUTPUT_H

#include <stddef.h>
#include <sys/types.h>

#define OUTPUT_LINE_MAX 1024
#define OUTPUT_READ_MAX 65536
#define OUTPUT_RATE 1000

struct output;

/*
 * Before fork: set up stream 1 or 2 of worker program:slot for mode.
 * *child_fd is what the child must dup2 onto the stream, or -1 to leave
 * it alone (inherit).  NULL with *child_fd = -1 for inherit, or when the
 * pipe cannot be made (logged; the worker then inherits).  A file that
 * cannot be opened or is refused is logged, and the stream's lines go to
 * batond's log instead.
 */
struct output *output_new(const char *program, int slot, int stream, const char *mode,
			  int *child_fd);
/* After fork (parent): close the child's end and start reading. */
void output_started(struct output *o, pid_t pid);
/* The worker is gone: read what is left, flush a partial line, free. */
void output_free(struct output *o);
/* SIGUSR1: reopen every output file; 0, or -1 with err (first failure). */
int output_reopen(char *err, size_t errlen);
/*
 * reexec: output_save writes the stream's pipe fd, partial line and drop
 * count as fields KEY.fd, KEY.partial, KEY.dropped of the current record;
 * output_adopt rebuilds the stream from them (an output file is opened
 * again, and checked again); start reading with output_started(o, pid).
 * *out is NULL when the record has no such stream.  0, or -1 with err.
 */
struct state_out;
struct state_rec;
void output_save(const struct output *o, struct state_out *so, const char *key);
int output_adopt(struct output **out, const struct state_rec *r, const char *key,
		 const char *program, int slot, int stream, const char *mode, char *err,
		 size_t errlen);

/* Is mode valid ("log", "inherit" or an absolute path)? */
int output_mode_valid(const char *mode);

#endif
