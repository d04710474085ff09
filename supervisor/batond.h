/* The supervisor's process-wide state, owned by main.c. */
#ifndef BATON_BATOND_H
#define BATON_BATOND_H

#include <sys/queue.h>

struct event_base;
struct program;
struct listener;

TAILQ_HEAD(program_list, program);
TAILQ_HEAD(listener_list, listener);

struct batond {
	struct event_base *base;
	struct program_list programs;
	struct listener_list listeners;
	int shutting_down;
	int log_level_fixed; /* -l given: reloads keep it */
	const char *config_path;
};

extern struct batond batond;

/* Begin a graceful shutdown (as SIGTERM); why names the cause in the log. */
void batond_shutdown(const char *why);

/* Called by the pool when a worker is gone; ends the loop once all are. */
void batond_check_exit(void);

#endif
