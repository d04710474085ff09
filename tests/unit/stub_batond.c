/*
 * Unit tests link the supervisor modules without main.c; these stand in
 * for what main.c defines.  Weak, so a test may define its own.
 */
#include "batond.h"

__attribute__((weak)) struct batond batond;
__attribute__((weak)) void batond_check_exit(void) {}
__attribute__((weak)) void batond_shutdown(const char *why) { (void)why; }
