/* The supervisor's process-wide state: see batond.h. */
#include "batond.h"

struct batond batond = {
	.programs = TAILQ_HEAD_INITIALIZER(batond.programs),
	.listeners = TAILQ_HEAD_INITIALIZER(batond.listeners),
};
