/*
 * Starting a worker (supervisor/spawn.c): the environment it gets from
 * batond's, its user and its program, and closing every inherited fd
 * when the kernel has no close_range().
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "spawn.h"

/* The value of name in env, or NULL; fails the test if it is there twice. */
static const char *get(char **env, const char *name)
{
	const char *found = NULL;
	size_t len = strlen(name);
	for (char **p = env; *p; p++) {
		if (strncmp(*p, name, len) == 0 && (*p)[len] == '=') {
			if (found)
				fail_msg("%s is in the environment twice", name);
			found = *p + len + 1;
		}
	}
	return found;
}

static size_t count(char **env)
{
	size_t n = 0;
	while (env[n])
		n++;
	return n;
}

static struct cfg_program prog;

static struct cfg_program *program(char **env)
{
	memset(&prog, 0, sizeof(prog));
	snprintf(prog.name, sizeof(prog.name), "web");
	prog.env = env;
	return &prog;
}

/* What batond might have been started with: a login shell's and a systemd
 * service's variables, and a few look-alikes that are not theirs. */
static char *batond_env[] = {
	"PATH=/usr/bin:/bin",
	"TERM=xterm",
	"LANG=C.UTF-8",
	"HOME=/root",
	"USER=root",
	"LOGNAME=root",
	"SHELL=/bin/bash",
	"XDG_RUNTIME_DIR=/run/user/0",
	"XDG_SESSION_ID=7",
	"INVOCATION_ID=0f1e2d3c",
	"JOURNAL_STREAM=8:1234",
	"CREDENTIALS_DIRECTORY=/run/credentials/batond.service",
	"NOTIFY_SOCKET=/run/systemd/notify",
	"WATCHDOG_USEC=30000000",
	"WATCHDOG_PID=1",
	"LISTEN_PID=1",
	"LISTEN_FDS=2",
	"LISTEN_FDNAMES=a:b",
	"MAINPID=1",
	"MANAGERPID=1",
	"SYSTEMD_EXEC_PID=1",
	"SSH_AUTH_SOCK=/tmp/ssh-x/agent.1",
	"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus",
	"LISTEN_ADDR=0.0.0.0",	   /* not systemd's: kept */
	"XDG_RUNTIME_DIRECTORY=x", /* a longer name: kept */
	"XDG_RUNTIME_DI=y",	   /* a shorter one: kept */
	NULL,
};

static const char *const dropped[] = {
	"XDG_RUNTIME_DIR", "XDG_SESSION_ID", "INVOCATION_ID", "JOURNAL_STREAM",
	"CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
	"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "MAINPID", "MANAGERPID",
	"SYSTEMD_EXEC_PID", "SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS",
};

#define NDROPPED (sizeof(dropped) / sizeof(dropped[0]))

static void test_env_drops_batond_session(void **state)
{
	(void)state;
	char **env = spawn_env(batond_env, program(NULL), NULL, 1, 4, 0);
	assert_non_null(env);
	for (size_t i = 0; i < NDROPPED; i++)
		if (get(env, dropped[i]))
			fail_msg("%s reached the worker", dropped[i]);
	assert_string_equal(get(env, "PATH"), "/usr/bin:/bin");
	assert_string_equal(get(env, "TERM"), "xterm");
	assert_string_equal(get(env, "LANG"), "C.UTF-8");
	assert_string_equal(get(env, "LISTEN_ADDR"), "0.0.0.0");
	assert_string_equal(get(env, "XDG_RUNTIME_DIRECTORY"), "x");
	assert_string_equal(get(env, "XDG_RUNTIME_DI"), "y");
	/* No user: batond's own login variables stay. */
	assert_string_equal(get(env, "HOME"), "/root");
	assert_string_equal(get(env, "LOGNAME"), "root");
	assert_string_equal(get(env, "SHELL"), "/bin/bash");
	assert_string_equal(get(env, "BATON_FD"), "3");
	assert_string_equal(get(env, "BATON_PROGRAM"), "web");
	assert_string_equal(get(env, "BATON_WORKER"), "1");
	assert_string_equal(get(env, "BATON_GENERATION"), "4");
	size_t base = sizeof(batond_env) / sizeof(batond_env[0]) - 1;
	assert_int_equal(count(env), base - NDROPPED + 4);
	spawn_env_free(env);
}

static void test_env_journal_kept_when_inherited(void **state)
{
	(void)state;
	char **env = spawn_env(batond_env, program(NULL), NULL, 0, 1, 1);
	assert_non_null(env);
	assert_string_equal(get(env, "JOURNAL_STREAM"), "8:1234");
	assert_null(get(env, "INVOCATION_ID"));
	assert_null(get(env, "XDG_RUNTIME_DIR"));
	spawn_env_free(env);
}

static void test_env_user(void **state)
{
	(void)state;
	struct passwd pw = {.pw_name = "nobody", .pw_dir = "/nonexistent",
			    .pw_shell = "/usr/sbin/nologin"};
	char **env = spawn_env(batond_env, program(NULL), &pw, 0, 1, 0);
	assert_non_null(env);
	assert_string_equal(get(env, "HOME"), "/nonexistent");
	assert_string_equal(get(env, "USER"), "nobody");
	assert_string_equal(get(env, "LOGNAME"), "nobody");
	assert_string_equal(get(env, "SHELL"), "/usr/sbin/nologin");
	assert_null(get(env, "XDG_RUNTIME_DIR"));
	spawn_env_free(env);

	pw.pw_shell = ""; /* passwd(5): an empty shell is /bin/sh */
	env = spawn_env(NULL, program(NULL), &pw, 0, 1, 0);
	assert_non_null(env);
	assert_string_equal(get(env, "SHELL"), "/bin/sh");
	assert_string_equal(get(env, "HOME"), "/nonexistent");
	assert_int_equal(count(env), 8);
	spawn_env_free(env);
}

static void test_env_program_wins(void **state)
{
	(void)state;
	struct passwd pw = {.pw_name = "nobody", .pw_dir = "/nonexistent", .pw_shell = "/bin/sh"};
	char *own[] = {"XDG_RUNTIME_DIR=/run/user/65534", "HOME=/srv/app", "PATH=/opt/app/bin",
		       "INVOCATION_ID=mine", "BATON_WORKER=9", NULL};
	char **env = spawn_env(batond_env, program(own), &pw, 2, 1, 0);
	assert_non_null(env);
	assert_string_equal(get(env, "XDG_RUNTIME_DIR"), "/run/user/65534");
	assert_string_equal(get(env, "INVOCATION_ID"), "mine");
	assert_string_equal(get(env, "HOME"), "/srv/app");
	assert_string_equal(get(env, "PATH"), "/opt/app/bin");
	assert_string_equal(get(env, "USER"), "nobody");
	/* The config refuses BATON_* keys; were one there, batond's wins. */
	assert_string_equal(get(env, "BATON_WORKER"), "2");
	assert_null(get(env, "CREDENTIALS_DIRECTORY"));
	spawn_env_free(env);
}

static void test_env_odd_base(void **state)
{
	(void)state;
	/* A name twice (getenv() reads the first), an entry that is no
	 * variable, and batond's own BATON_* (batond run by a batond). */
	char *base[] = {"A=1", "A=2", "JUNK", "BATON_WORKER=7", "BATON_SOCKET=/run/x.sock",
			"=empty", NULL};
	char **env = spawn_env(base, program(NULL), NULL, 0, 1, 0);
	assert_non_null(env);
	assert_string_equal(get(env, "A"), "1");
	assert_null(get(env, "JUNK"));
	assert_string_equal(get(env, "BATON_WORKER"), "0");
	assert_string_equal(get(env, "BATON_SOCKET"), "/run/x.sock");
	for (char **p = env; *p; p++)
		assert_non_null(strchr(*p, '='));
	spawn_env_free(env);
	spawn_env_free(NULL);
}

static void test_env_large(void **state)
{
	(void)state;
	/* More variables than the first allocation holds. */
	enum { N = 1000 };
	char **base = calloc(N + 1, sizeof(char *));
	assert_non_null(base);
	for (int i = 0; i < N; i++)
		assert_true(asprintf(&base[i], "V%d=%d", i, i) > 0);
	char **env = spawn_env(base, program(NULL), NULL, 0, 1, 0);
	assert_non_null(env);
	assert_int_equal(count(env), N + 4);
	assert_string_equal(get(env, "V999"), "999");
	spawn_env_free(env);
	spawn_env_free(base);
}

/* --- closing inherited fds ---------------------------------------------- */

#if defined(__x86_64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* Make close_range() fail with ENOSYS in this process, as on a kernel
 * before 5.9; 0 or -1. */
static int no_close_range(void)
{
#if defined(TEST_AUDIT_ARCH) && defined(__NR_close_range)
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TEST_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_close_range, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fp = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) < 0)
		return -1;
	return 0;
#else
	return -1;
#endif
}

/* In a child: fds 3 and up to high open, spawn_close_from(4) (with
 * close_range() made to fail if broken); 0 if fds 0-3 are still open and
 * every other one is closed, otherwise which check failed. */
static int close_from_child(int broken, int high)
{
	int fds[] = {4, 5, 17, 64, high / 2, high};
	if (dup2(0, 3) != 3)
		return 1;
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (dup2(0, fds[i]) != fds[i])
			return 2;
	if (broken) {
		if (no_close_range() < 0)
			return 3;
		if (close_range(4, ~0U, 0) == 0 || errno != ENOSYS)
			return 4; /* the filter does not work: the test would prove nothing */
	}
	if (spawn_close_from(4) < 0)
		return 5;
	for (int fd = 0; fd <= 3; fd++)
		if (fcntl(fd, F_GETFD) < 0)
			return 6;
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fcntl(fds[i], F_GETFD) >= 0 || errno != EBADF)
			return 7;
	return 0;
}

static void test_close_from(void **state)
{
	(void)state;
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	int high = rl.rlim_cur > 4096 ? 4095 : (int)rl.rlim_cur - 1;
	assert_true(high > 64);
#if !defined(TEST_AUDIT_ARCH) || !defined(__NR_close_range)
	skip(); /* no seccomp filter written for this architecture */
#endif
	for (int broken = 0; broken <= 1; broken++) {
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(close_from_child(broken, high));
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("close_range %s: check %d failed", broken ? "broken" : "working",
				 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_env_drops_batond_session),
		cmocka_unit_test(test_env_journal_kept_when_inherited),
		cmocka_unit_test(test_env_user),
		cmocka_unit_test(test_env_program_wins),
		cmocka_unit_test(test_env_odd_base),
		cmocka_unit_test(test_env_large),
		cmocka_unit_test(test_close_from),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
