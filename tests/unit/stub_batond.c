/*
 * Unit tests link the supervisor modules without main.c; this stands in
 * for what main.c defines.  Weak, so a test may define its own.
 */
#include "batond.h"

__attribute__((weak)) struct batond batond;
