/*
 * The control socket's client limits (supervisor/control.c): read-only
 * users get a share per uid and never the reserve that keeps root able
 * to connect.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "control.h"

#define MAX CONTROL_CLIENTS_MAX
#define PER_UID CONTROL_CLIENTS_PER_UID
#define READ_ONLY (CONTROL_CLIENTS_MAX - CONTROL_CLIENTS_RESERVED)

static void test_full_access(void **state)
{
	(void)state;
	assert_int_equal(control_limit(1, 0, 0, 0), CONTROL_LIMIT_NONE);
	/* neither the per-uid share nor the read-only ones stop root */
	assert_int_equal(control_limit(1, PER_UID + 2, 2, PER_UID), CONTROL_LIMIT_NONE);
	assert_int_equal(control_limit(1, MAX - 1, READ_ONLY, MAX - 1 - READ_ONLY), CONTROL_LIMIT_NONE);
	assert_int_equal(control_limit(1, MAX, READ_ONLY, 0), CONTROL_LIMIT_ALL);
	assert_int_equal(control_limit(1, MAX + 3, 0, MAX + 3), CONTROL_LIMIT_ALL);
}

static void test_read_only(void **state)
{
	(void)state;
	assert_int_equal(control_limit(0, 0, 0, 0), CONTROL_LIMIT_NONE);
	assert_int_equal(control_limit(0, PER_UID - 1, PER_UID - 1, PER_UID - 1), CONTROL_LIMIT_NONE);
	assert_int_equal(control_limit(0, PER_UID, PER_UID, PER_UID), CONTROL_LIMIT_UID);
	/* a new uid while the others hold all the read-only share */
	assert_int_equal(control_limit(0, READ_ONLY - 1, READ_ONLY - 1, 0), CONTROL_LIMIT_NONE);
	assert_int_equal(control_limit(0, READ_ONLY, READ_ONLY, 0), CONTROL_LIMIT_READ_ONLY);
	/* root's clients do not count against the read-only share */
	assert_int_equal(control_limit(0, MAX - 1, READ_ONLY - 1, 0), CONTROL_LIMIT_NONE);
	assert_int_equal(control_limit(0, MAX, 0, 0), CONTROL_LIMIT_ALL);
	/* the reserve is what is left for full access */
	assert_true(CONTROL_CLIENTS_RESERVED > 0 && READ_ONLY >= PER_UID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_access),
		cmocka_unit_test(test_read_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
