/*
 * The INI configuration.  Every key is declared once in config.c's table
 * (name, type, bounds, default, help); parsing, validation, `batond -t`
 * and the README's reference (`batond --config-reference`) all read it.
 */
#ifndef BATON_CONFIG_H
#define BATON_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config_value.h"
#include "log.h"
#include "util.h"

#define CFG_NAME_MAX 32
#define CFG_STR_MAX 256

enum restart_policy { RESTART_ALWAYS, RESTART_ON_FAILURE, RESTART_NEVER };

struct cfg_baton {
	char control[CFG_STR_MAX];
	unsigned control_mode;
	char control_group[CFG_NAME_MAX];
	int control_group_line; /* of the control_group key, for errors */
	int control_group_write;
	enum log_level log_level;
	int batch_scheduling;
	char log_file[CFG_STR_MAX]; /* "" : stderr */
	char http[CFG_STR_MAX]; /* "" : no HTTP endpoint */
	struct addr http_addr;
};

struct cfg_listener {
	char name[CFG_NAME_MAX];
	int line; /* of the section header, for errors */
	char address[CFG_STR_MAX];
	struct addr addr;
	char systemd_name[256]; /* address = systemd[:NAME] */
	char program[CFG_NAME_MAX];
	long long backlog;
	unsigned mode;
	char owner[CFG_NAME_MAX * 2];
	int tcp_nodelay;
	int tcp_keepalive;
	uint64_t tcp_keepidle;
	uint64_t tcp_keepintvl;
	long long tcp_keepcnt;
	uint64_t tcp_user_timeout;
	uint64_t tcp_defer_accept;
	uint64_t set; /* bit per key (table index) that appeared */
	uint64_t bad; /* bit per key whose value was rejected */
};

struct cfg_program {
	char name[CFG_NAME_MAX];
	int line;
	char command[CFG_STR_MAX * 4];
	char **argv; /* parsed command, NULL terminated */
	long long workers;
	char directory[CFG_STR_MAX];
	char environment[CFG_STR_MAX * 4];
	char **env; /* KEY=VALUE strings, NULL terminated */
	char user[CFG_NAME_MAX];
	unsigned umask;
	uint64_t ready_timeout;
	uint64_t drain_timeout;
	uint64_t stop_timeout;
	uint64_t queue_timeout;
	uint64_t heartbeat_timeout;
	uint64_t ack_timeout;
	char stdout_to[CFG_STR_MAX]; /* "log", "inherit" or /path */
	char stderr_to[CFG_STR_MAX];
	int stop_signal;
	enum restart_policy restart;
	uint64_t backoff;
	uint64_t backoff_max;
	long long start_retries;
	uint64_t start_window;
	long long capacity;
	long long upgrade_batch;
	uint64_t set;
	uint64_t bad;
};

struct config {
	char path[CFG_STR_MAX];
	struct cfg_baton baton;
	struct cfg_listener *listeners;
	int nlisteners;
	struct cfg_program *programs;
	int nprograms;
};

/*
 * Load and validate path into cfg.  Every error is appended to err as a
 * "file:line: message" line (truncated to errlen).  Returns the number of
 * errors; on a non-zero return cfg holds nothing (it is freed).
 */
int config_load(const char *path, struct config *cfg, char *err,
		size_t errlen);
void config_free(struct config *cfg);

struct cfg_program *config_program(struct config *cfg, const char *name);

/*
 * One key of a section (enum ksec of config_keys.h; base is its struct)
 * set from its text as the INI file would: 0, 1 when sec has no such key,
 * or -1 with the reason in err.  Used to restore a saved config (reexec).
 */
int config_section_set(int sec, void *base, const char *key, const char *value, char *err,
		       size_t errlen);
/* Every key of the section that has a default, set to it. */
void config_section_defaults(int sec, void *base);
/* Defaults, then every "cfg.KEY" field of r (unknown keys are ignored:
 * an older build's state); 0, or -1 with "TYPE: cfg.KEY: reason". */
struct state_rec;
int config_restore_section(const struct state_rec *r, int sec, void *base, char *err,
			   size_t errlen);


#endif
