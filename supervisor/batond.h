/* The supervisor's process-wide state (defined in batond.c, set up by main.c). */
#ifndef BATON_BATOND_H
#define BATON_BATOND_H

#include <stdint.h>
#include <sys/queue.h>

#include "config.h"

struct event_base;
struct program;
struct listener;

TAILQ_HEAD(program_list, program);
TAILQ_HEAD(listener_list, listener);

/* Control socket counters: control.c counts, report.c shows them. */
struct control_stats {
	int clients;
	uint64_t requests, refused_busy, refused_denied, bad_requests;
};

struct batond {
	struct event_base *base;
	struct program_list programs;
	struct listener_list listeners;
	int shutting_down;
	int log_level_fixed; /* -l given: reloads keep it */
	const char *config_path;
	struct cfg_baton baton; /* the [baton] settings in force */
	struct control_stats control;
};

extern struct batond batond;

#endif
