/*
 * Workers' output files (supervisor/output.c): a file planted where the
 * output goes is refused, at open and at reopen, and lines are cleaned.
 * Each case runs in a child whose stderr (batond's log) is captured.
 */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "output.h"

struct run {
	int status;
	char out[8192]; /* the child's stderr */
};

static struct run run; /* static: nothing to free when an assert fails */
static char dir[64];

/* Run fn in a child with stderr captured; its return value is the status. */
static void run_child(int (*fn)(void), struct run *r)
{
	FILE *f = tmpfile();
	assert_non_null(f);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fileno(f), STDERR_FILENO);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &r->status, 0), pid);
	ssize_t n = pread(fileno(f), r->out, sizeof(r->out) - 1, 0);
	r->out[n > 0 ? n : 0] = '\0';
	fclose(f);
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0)
		print_error("child status 0x%x; stderr:\n%s\n", r->status, r->out);
	assert_true(WIFEXITED(r->status));
	assert_int_equal(WEXITSTATUS(r->status), 0);
}

static int file_is(const char *path, const char *want)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return strcmp(buf, want) == 0;
}

static int file_has(const char *path, const char *want)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return strstr(buf, want) != NULL;
}

static void put(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		_exit(90);
}

/* A root-only file an attacker would like batond to append to. */
static void make_target(const char *target)
{
	int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		_exit(91);
	put(fd, "keep\n");
	close(fd);
}

static int symlinked_child(void)
{
	char path[128], target[128];
	int cfd;
	snprintf(path, sizeof(path), "%s/out.log", dir);
	snprintf(target, sizeof(target), "%s/target", dir);
	make_target(target);
	if (symlink(target, path) < 0)
		return 1;
	struct output *o = output_new("web", 0, 1, path, &cfd);
	if (!o || cfd < 0)
		return 2; /* the worker's output is still captured */
	put(cfd, "hello \x9b" "2J\x1b[31m red\n");
	output_free(o);
	return file_is(target, "keep\n") ? 0 : 3;
}

/* A symlink where the file goes: refused, the lines go to batond's log. */
static void test_symlink_refused(void **state)
{
	(void)state;
	char want[256];
	run_child(symlinked_child, &run);
	snprintf(want, sizeof(want),
		 " error: refusing output file path=%s/out.log reason=\"is a symlink\"; "
		 "logging it instead\n",
		 dir);
	if (!strstr(run.out, want))
		fail_msg("no '%s' in:\n%s", want, run.out);
	if (!strstr(run.out, " info: web:0 stdout: hello ?2J?[31m red\n"))
		fail_msg("no clean line in:\n%s", run.out);
}

static int reopen_child(void)
{
	char path[128], rotated[128], target[128], err[512], want[512];
	int cfd1, cfd2;
	snprintf(path, sizeof(path), "%s/out.log", dir);
	snprintf(rotated, sizeof(rotated), "%s/out.log.1", dir);
	snprintf(target, sizeof(target), "%s/target", dir);
	make_target(target);
	/* two streams on one file: it stays open while one ends */
	struct output *o1 = output_new("web", 0, 1, path, &cfd1);
	struct output *o2 = output_new("web", 0, 2, path, &cfd2);
	if (!o1 || !o2)
		return 1;
	put(cfd1, "one \xc2\x85\xc3\xa9\n");
	output_free(o1);
	if (!file_has(path, " web:0 stdout: one ?\xc3\xa9\n"))
		return 2;
	/* logrotate moved it, and the worker planted a symlink */
	if (rename(path, rotated) < 0 || symlink(target, path) < 0)
		return 3;
	if (output_reopen(err, sizeof(err)) != -1)
		return 4;
	snprintf(want, sizeof(want),
		 "refusing output file path=%s reason=\"is a symlink\"; writing on to the old one",
		 path);
	if (strcmp(err, want) != 0) {
		fprintf(stderr, "err: %s\n", err);
		return 5;
	}
	put(cfd2, "two \x9b\xe2\x82\xac\n");
	output_free(o2);
	if (!file_has(rotated, " web:0 stderr: two ?\xe2\x82\xac\n"))
		return 6;
	return file_is(target, "keep\n") ? 0 : 7;
}

/* SIGUSR1 after a symlink was planted: the streams keep the old file. */
static void test_reopen_refused(void **state)
{
	(void)state;
	run_child(reopen_child, &run);
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/baton-test-output-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char path[128];
	const char *names[] = {"out.log", "out.log.1", "target"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
