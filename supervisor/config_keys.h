/*
 * The key table: every INI key declared once, with its section, type,
 * bounds, default and help.  The parser (config.c) reads values through
 * it; this module prints the reference (README, baton.ini(5)) from it.
 */
#ifndef BATON_CONFIG_KEYS_H
#define BATON_CONFIG_KEYS_H

#include <stddef.h>
#include <stdio.h>

struct cfg_baton;
struct cfg_listener;
struct cfg_program;

enum ksec { S_BATON, S_LISTENER, S_PROGRAM, S_NONE };
enum ktype {
	T_STR,
	T_NAME,
	T_INT,
	T_BOOL,
	T_DUR,
	T_MODE,
	T_SIG,
	T_RESTART,
	T_LEVEL,
	T_ADDR,
	T_CMD,
	T_ENV,
};

struct config_key {
	enum ksec sec;
	const char *name;
	enum ktype type;
	size_t off, size;
	long long min, max; /* T_INT: value; T_DUR: milliseconds */
	const char *def;    /* NULL: required */
	const char *help;
	/* [baton] keys a reload cannot change: what a change means, a format
	 * for the old and the new value ("moving the log ('%s' to '%s')"). */
	const char *restart;
	/* What a change of this key means to a reload: CONFIG_DIFF_*. */
	unsigned diff;
};

/* What differs between two sections, as config_diff_* report it. */
#define CONFIG_DIFF_SETTINGS 1u /* a setting: listeners update, programs upgrade */
#define CONFIG_DIFF_ADDRESS 2u  /* a listener's address: a new socket */
#define CONFIG_DIFF_WORKERS 4u  /* a program's worker count: a scale */

extern const struct config_key config_keys[];
extern const size_t config_nkeys;

/*
 * A reload may not change the keys that need a restart of batond: 0, or
 * -1 with "KEY: moving ... needs a restart of batond; nothing changed".
 */
int config_check_restart(const struct cfg_baton *old, const struct cfg_baton *cur, char *err,
			 size_t errlen);

/* The CONFIG_DIFF_* bits of the keys whose values differ (0: the same). */
unsigned config_diff_listener(const struct cfg_listener *a, const struct cfg_listener *b);
unsigned config_diff_program(const struct cfg_program *a, const struct cfg_program *b);

/* Every key of section sec (base: its struct) as a "cfg.KEY VALUE" field,
 * in the text the INI file takes (reexec; config_section_set reads it). */
struct state_out;
void config_save_section(struct state_out *o, int sec, const void *base);

/* Print the key reference as a Markdown table (README, `--config-reference`). */
void config_reference(FILE *out);
/* The same as man(7) text for baton.ini(5): one .SS per section, a .TP per key. */
void config_reference_man(FILE *out);

#endif
