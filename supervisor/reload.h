/*
 * Configuration reload: read the file again, validate all of it, work out
 * the difference with what runs, and apply it so that either everything
 * changes or nothing does.  Listeners are opened before anything else
 * changes (a bind error aborts the reload untouched); then removed
 * listeners close, removed programs drain, new programs start, and
 * programs whose settings changed are scaled (`workers` only) or upgraded.
 */
#ifndef BATON_RELOAD_H
#define BATON_RELOAD_H

#include <stddef.h>

struct cfg_baton;
struct evbuffer;
struct program;
struct reload_plan;

/* Set by main: what a reload tells the floors above it. */
struct reload_hooks {
	/* The [baton] settings that change live (control_mode, control_group). */
	void (*baton)(const struct cfg_baton *cfg);
};
extern struct reload_hooks reload_hooks;

/*
 * Load and validate path and compare it with the running state.  NULL
 * with the reason in err: every config error as "file:line: message"
 * lines, or why the change cannot be applied without a restart.
 */
struct reload_plan *reload_prepare(const char *path, char *err, size_t errlen);
/* One line per change ("nothing to do" when empty); 0 changes = 1 line. */
int reload_describe(const struct reload_plan *plan, struct evbuffer *out);
/*
 * Apply the plan.  Programs to upgrade or scale are handed to the
 * callbacks (the control module runs those as operations).  0, or -1 with
 * err when a new listener cannot be opened: then nothing has changed.
 */
int reload_apply(struct reload_plan *plan,
		 void (*upgrade)(struct program *p, void *arg),
		 void (*scale)(struct program *p, int workers, void *arg), void *arg,
		 char *err, size_t errlen);
void reload_free(struct reload_plan *plan);

#endif
