#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config_keys.h"
#include "state.h"

struct parse {
	struct config *cfg;
	const char *path;
	char here[PATH_MAX];
	FILE *f;
	char *buf;
	size_t cap;
	int line;
	int prev_key; /* as inih's prev_name: an indented line continues a value */
	enum ksec sec;
	int idx; /* index into listeners/programs */
	uint64_t baton_set, baton_bad;
	int baton_seen;
	char *err;
	size_t errlen, errused;
	int nerr;
};

static void add_err(struct parse *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_err(struct parse *p, int line, const char *fmt, ...)
{
	va_list ap;
	p->nerr++;
	if (!p->err || p->errused + 1 >= p->errlen)
		return;
	int n = snprintf(p->err + p->errused, p->errlen - p->errused, "%s:%d: ",
			 p->path, line);
	if (n > 0)
		p->errused += (size_t)n < p->errlen - p->errused
				      ? (size_t)n
				      : p->errlen - p->errused - 1;
	va_start(ap, fmt);
	n = vsnprintf(p->err + p->errused, p->errlen - p->errused, fmt, ap);
	va_end(ap);
	if (n > 0)
		p->errused += (size_t)n < p->errlen - p->errused
				      ? (size_t)n
				      : p->errlen - p->errused - 1;
	if (p->errused + 1 < p->errlen) {
		p->err[p->errused++] = '\n';
		p->err[p->errused] = '\0';
	}
}

static void *sec_base(struct parse *p, enum ksec sec)
{
	switch (sec) {
	case S_BATON:
		return &p->cfg->baton;
	case S_LISTENER:
		return &p->cfg->listeners[p->idx];
	case S_PROGRAM:
		return &p->cfg->programs[p->idx];
	default:
		return NULL;
	}
}

static uint64_t *sec_set(struct parse *p)
{
	switch (p->sec) {
	case S_BATON:
		return &p->baton_set;
	case S_LISTENER:
		return &p->cfg->listeners[p->idx].set;
	case S_PROGRAM:
		return &p->cfg->programs[p->idx].set;
	default:
		return NULL;
	}
}

static uint64_t *sec_bad(struct parse *p)
{
	switch (p->sec) {
	case S_BATON:
		return &p->baton_bad;
	case S_LISTENER:
		return &p->cfg->listeners[p->idx].bad;
	case S_PROGRAM:
		return &p->cfg->programs[p->idx].bad;
	default:
		return NULL;
	}
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= CFG_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

/* Parse value for key into the section struct; 0, or -1 with msg. */
static int set_value(struct parse *p, const struct config_key *k, void *base,
		     const char *value, char *msg, size_t msglen)
{
	char *dst = (char *)base + k->off;
	char buf[CFG_STR_MAX * 4];
	long long ll;
	uint64_t ms;
	int b;
	unsigned mode;

	switch (k->type) {
	case T_STR:
	case T_NAME:
	case T_CMD:
	case T_ENV:
	case T_ADDR:
		if (util_expand_here(p->here, value, buf, sizeof(buf)) ||
		    strlen(buf) >= k->size) {
			snprintf(msg, msglen, "value too long (at most %zu bytes)", k->size - 1);
			return -1;
		}
		if (k->type == T_NAME && !valid_name(buf)) {
			snprintf(msg, msglen,
				 "'%s' is not a valid name (1-31 of letters, digits, _ - .)", buf);
			return -1;
		}
		if (k->type == T_ADDR && k->sec == S_BATON && buf[0]) {
			struct cfg_baton *cb = base;
			if (addr_parse(buf, &cb->http_addr, msg, msglen))
				return -1;
			if (cb->http_addr.kind != ADDR_TCP) {
				snprintf(msg, msglen, "the HTTP endpoint takes a TCP address, not '%s'", buf);
				return -1;
			}
		} else if (k->type == T_ADDR && k->sec != S_BATON &&
			   (strcmp(buf, "systemd") == 0 || strncmp(buf, "systemd:", 8) == 0)) {
			struct cfg_listener *l = base;
			const char *name = buf[7] ? buf + 8 : l->name;
			if (!name[0] || strlen(name) >= sizeof(l->systemd_name) ||
			    strchr(name, ':')) {
				snprintf(msg, msglen, "want systemd or systemd:NAME (the socket's "
					 "FileDescriptorName=, without ':'), got '%s'", buf);
				return -1;
			}
			for (const char *c = name; *c; c++)
				if (*c <= ' ' || *c > '~') {
					snprintf(msg, msglen, "systemd socket name must be printable ASCII "
						 "without spaces, got '%s'", buf);
					return -1;
				}
			memset(&l->addr, 0, sizeof(l->addr));
			l->addr.kind = ADDR_SYSTEMD;
			snprintf(l->systemd_name, sizeof(l->systemd_name), "%s", name);
		} else if (k->type == T_ADDR && k->sec != S_BATON) {
			struct cfg_listener *l = base;
			if (addr_parse(buf, &l->addr, msg, msglen))
				return -1;
		}
		if (k->type == T_CMD) {
			struct cfg_program *pr = base;
			char **v = config_split_command(buf, msg, msglen);
			if (!v)
				return -1;
			config_free_strv(pr->argv);
			pr->argv = v;
		}
		if (k->type == T_ENV) {
			struct cfg_program *pr = base;
			char **v = config_split_env(buf, msg, msglen);
			if (!v)
				return -1;
			config_free_strv(pr->env);
			pr->env = v;
		}
		strcpy(dst, buf);
		return 0;
	case T_INT:
		if (util_parse_int(value, k->min, k->max, &ll)) {
			snprintf(msg, msglen, "'%s' is not a whole number from %lld to %lld",
				 value, k->min, k->max);
			return -1;
		}
		*(long long *)dst = ll;
		return 0;
	case T_BOOL:
		if (util_parse_bool(value, &b)) {
			snprintf(msg, msglen, "'%s' is not yes or no", value);
			return -1;
		}
		*(int *)dst = b;
		return 0;
	case T_DUR:
		if (util_parse_duration(value, &ms) || ms < (uint64_t)k->min ||
		    ms > (uint64_t)k->max) {
			char lo[32], hi[32];
			util_format_duration(k->min, lo, sizeof(lo));
			util_format_duration(k->max, hi, sizeof(hi));
			snprintf(msg, msglen,
				 "'%s' is not a duration from %s to %s (like 500ms, 10s, 2m)",
				 value, lo, hi);
			return -1;
		}
		*(uint64_t *)dst = ms;
		return 0;
	case T_MODE:
		if (util_parse_mode(value, &mode)) {
			snprintf(msg, msglen, "'%s' is not an octal file mode like 0660", value);
			return -1;
		}
		if (k->max && mode > (unsigned)k->max) {
			snprintf(msg, msglen, "'%s' is more than %04llo", value, k->max);
			return -1;
		}
		*(unsigned *)dst = mode;
		return 0;
	case T_SIG:
		if ((b = config_parse_signal(value)) < 0) {
			snprintf(msg, msglen,
				 "'%s' is not one of TERM, INT, QUIT, HUP, USR1, USR2, KILL", value);
			return -1;
		}
		*(int *)dst = b;
		return 0;
	case T_RESTART:
		if (strcmp(value, "always") == 0)
			*(enum restart_policy *)dst = RESTART_ALWAYS;
		else if (strcmp(value, "on-failure") == 0)
			*(enum restart_policy *)dst = RESTART_ON_FAILURE;
		else if (strcmp(value, "never") == 0)
			*(enum restart_policy *)dst = RESTART_NEVER;
		else {
			snprintf(msg, msglen, "'%s' is not always, on-failure or never", value);
			return -1;
		}
		return 0;
	case T_LEVEL:
		if (log_parse_level(value, (enum log_level *)dst)) {
			snprintf(msg, msglen, "'%s' is not debug, info, warn or error", value);
			return -1;
		}
		return 0;
	}
	return -1;
}

static void apply_defaults(struct parse *p, enum ksec sec, void *base)
{
	char msg[256];
	for (size_t i = 0; i < config_nkeys; i++)
		if (config_keys[i].sec == sec && config_keys[i].def &&
		    set_value(p, &config_keys[i], base, config_keys[i].def, msg, sizeof(msg)))
			fatal("config table: bad default for %s: %s", config_keys[i].name, msg);
}

static void *grow(void *arr, int n, size_t elem)
{
	char *a = realloc(arr, elem * (n + 1));
	if (!a)
		fatal("out of memory");
	memset(a + elem * n, 0, elem);
	return a;
}

/*
 * Called by the reader for each "[...]" line, before inih sees it, with the
 * text between the brackets (not NUL terminated: the line goes on).
 */
static void section_begin(struct parse *p, const char *name, size_t len)
{
	char n[CFG_NAME_MAX];
	p->sec = S_NONE;

	if (len == 5 && memcmp(name, "baton", 5) == 0) {
		if (p->baton_seen)
			add_err(p, p->line, "section [baton] appears twice");
		p->baton_seen = 1;
		p->sec = S_BATON;
		return;
	}
	int is_l = len >= 9 && memcmp(name, "listener:", 9) == 0;
	int is_p = len >= 8 && memcmp(name, "program:", 8) == 0;
	if (!is_l && !is_p) {
		add_err(p, p->line,
			"unknown section [%.*s] (want [baton], [listener:NAME] or [program:NAME])",
			(int)len, name);
		return;
	}
	const char *rest = name + (is_l ? 9 : 8);
	size_t rlen = len - (size_t)(is_l ? 9 : 8);
	if (rlen < sizeof(n)) {
		memcpy(n, rest, rlen);
		n[rlen] = '\0';
	}
	if (rlen >= sizeof(n) || !valid_name(n)) {
		add_err(p, p->line,
			"bad section name '%.*s%s' (1-31 of letters, digits, _ - .)",
			(int)(rlen > 40 ? 40 : rlen), rest, rlen > 40 ? "..." : "");
		return;
	}
	struct config *c = p->cfg;
	if (is_l) {
		for (int i = 0; i < c->nlisteners; i++)
			if (strcmp(c->listeners[i].name, n) == 0) {
				add_err(p, p->line, "[listener:%s] already defined at line %d",
					n, c->listeners[i].line);
				return;
			}
		c->listeners = grow(c->listeners, c->nlisteners, sizeof(*c->listeners));
		p->idx = c->nlisteners++;
		p->sec = S_LISTENER;
		strcpy(c->listeners[p->idx].name, n);
		c->listeners[p->idx].line = p->line;
		apply_defaults(p, S_LISTENER, &c->listeners[p->idx]);
	} else {
		for (int i = 0; i < c->nprograms; i++)
			if (strcmp(c->programs[i].name, n) == 0) {
				add_err(p, p->line, "[program:%s] already defined at line %d",
					n, c->programs[i].line);
				return;
			}
		c->programs = grow(c->programs, c->nprograms, sizeof(*c->programs));
		p->idx = c->nprograms++;
		p->sec = S_PROGRAM;
		strcpy(c->programs[p->idx].name, n);
		c->programs[p->idx].line = p->line;
		apply_defaults(p, S_PROGRAM, &c->programs[p->idx]);
	}
}

/* As inih's: the first of chars, or an inline comment (" ;"), or the end. */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
	int was_space = 0;
	while (*s && (!chars || !strchr(chars, *s)) && !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

/*
 * inih reader: whole lines, counted, with section headers seen first.
 * It sorts each line as inih will (blank, comment, continuation, section,
 * key = value) and reports the lines inih would refuse itself: inih stops
 * at, or returns only, the first of those.  A line reported here reaches
 * inih blank, so inih cannot report it again.
 */
static char *reader(char *str, int num, void *stream)
{
	static const char bom[] = "\xEF\xBB\xBF";
	struct parse *p = stream;
	ssize_t n = getline(&p->buf, &p->cap, p->f);
	if (n < 0)
		return NULL;
	p->line++;
	/* getline() gives the real length: a NUL would cut the value short
	 * for inih and every string after it, so it is an error, not text. */
	if (memchr(p->buf, '\0', (size_t)n)) {
		add_err(p, p->line, "NUL byte in the file");
		strcpy(str, "\n");
		return str;
	}
	const char *s = p->buf;
	size_t len = (size_t)n;
	/* A UTF-8 byte order mark: inih would skip it, but so must we. */
	if (p->line == 1 && len >= 3 && memcmp(s, bom, 3) == 0) {
		s += 3;
		len -= 3;
	}
	if (len && s[len - 1] == '\n')
		len--;
	if (len && s[len - 1] == '\r')
		len--;
	/* The line, '\n' and '\0' must fit in num bytes. */
	if (num < 2 || len > (size_t)num - 2) {
		add_err(p, p->line, "line longer than %d characters", num - 2);
		strcpy(str, "\n");
		return str;
	}
	memcpy(str, s, len);
	str[len] = '\n';
	str[len + 1] = '\0';

	const char *t = str;
	while (isspace((unsigned char)*t))
		t++;
	if (!*t || *t == ';' || *t == '#')
		return str; /* blank or comment */
	if (p->prev_key && t > str)
		return str; /* continues the previous value (the handler says so) */
	if (*t == '[') {
		const char *end = find_chars_or_comment(t + 1, "]");
		if (*end == ']') {
			section_begin(p, t + 1, (size_t)(end - t - 1));
			p->prev_key = 0;
			return str;
		}
		add_err(p, p->line, "syntax error: no ']' after the section name");
	} else {
		const char *end = find_chars_or_comment(t, "=:");
		if (*end == '=' || *end == ':') {
			p->prev_key = end > t; /* inih keeps no empty name */
			return str;
		}
		add_err(p, p->line, "syntax error: expected 'key = value'");
	}
	strcpy(str, "\n");
	return str;
}

static int check_control_path(const char *path, char *msg, size_t msglen)
{
	struct sockaddr_un un;

	if (path[0] != '/') {
		snprintf(msg, msglen, "want an absolute path, got '%s'", path);
		return -1;
	}
	if (strlen(path) >= sizeof(un.sun_path)) {
		snprintf(msg, msglen, "path is %zu bytes, a unix socket path has at most %zu",
			 strlen(path), sizeof(un.sun_path) - 1);
		return -1;
	}
	return 0;
}

static int handler(void *user, const char *section, const char *name,
		   const char *value)
{
	struct parse *p = user;
	char msg[512];

	if (!section[0]) {
		add_err(p, p->line, "'%s' is outside any section", name);
		return 1;
	}
	if (p->sec == S_NONE)
		return 1; /* the section itself was reported */
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		if (k->sec != p->sec || strcmp(k->name, name) != 0)
			continue;
		uint64_t *set = sec_set(p);
		if (*set & (1ull << i)) {
			add_err(p, p->line,
				"'%s' is set twice in [%s] (or a value continues on an indented line)",
				name, section);
			return 1;
		}
		*set |= 1ull << i;
		if (k->sec == S_BATON && strcmp(k->name, "control_group") == 0)
			p->cfg->baton.control_group_line = p->line;
		if (set_value(p, k, sec_base(p, k->sec), value, msg, sizeof(msg))) {
			*sec_bad(p) |= 1ull << i;
			add_err(p, p->line, "%s: %s", name, msg);
		} else if (k->sec == S_BATON && strcmp(k->name, "control") == 0 &&
			   check_control_path(p->cfg->baton.control, msg, sizeof(msg)) < 0) {
			*sec_bad(p) |= 1ull << i;
			add_err(p, p->line, "%s: %s", name, msg);
		} else if (k->sec == S_PROGRAM && (strcmp(k->name, "stdout") == 0 ||
						    strcmp(k->name, "stderr") == 0) &&
			   strcmp(value, "log") != 0 && strcmp(value, "inherit") != 0 &&
			   ((const char *)sec_base(p, k->sec) + k->off)[0] != '/') {
			*sec_bad(p) |= 1ull << i;
			add_err(p, p->line, "%s: want log, inherit or an absolute path, got '%s'", name,
				(const char *)sec_base(p, k->sec) + k->off);
		} else if (k->sec == S_BATON && strcmp(k->name, "log_file") == 0 &&
			   p->cfg->baton.log_file[0] && p->cfg->baton.log_file[0] != '/') {
			*sec_bad(p) |= 1ull << i;
			add_err(p, p->line, "%s: want an absolute path (or %%(here)s/...), got '%s'",
				name, p->cfg->baton.log_file);
		}
		return 1;
	}
	add_err(p, p->line, "unknown key '%s' in [%s]", name, section);
	return 1;
}

static int key_set(uint64_t set, const char *name, enum ksec sec)
{
	for (size_t i = 0; i < config_nkeys; i++)
		if (config_keys[i].sec == sec && strcmp(config_keys[i].name, name) == 0)
			return (set >> i) & 1;
	return 0;
}

static void check_required(struct parse *p, enum ksec sec, uint64_t set,
			   int line, const char *what, const char *name)
{
	for (size_t i = 0; i < config_nkeys; i++)
		if (config_keys[i].sec == sec && !config_keys[i].def && !((set >> i) & 1))
			add_err(p, line, "[%s:%s] needs '%s'", what, name, config_keys[i].name);
}

static int lookup_owner(const char *spec, char *msg, size_t msglen)
{
	char user[CFG_NAME_MAX * 2];
	snprintf(user, sizeof(user), "%s", spec);
	char *group = strchr(user, ':');
	if (group)
		*group++ = '\0';
	if (user[0] && !getpwnam(user)) {
		snprintf(msg, msglen, "no such user '%s'", user);
		return -1;
	}
	if (group && !getgrnam(group)) {
		snprintf(msg, msglen, "no such group '%s'", group);
		return -1;
	}
	return 0;
}

static void validate(struct parse *p)
{
	struct config *c = p->cfg;
	char msg[256];

	if (c->baton.control_group[0] && !getgrnam(c->baton.control_group))
		add_err(p, c->baton.control_group_line,
			"control_group: no such group '%s'", c->baton.control_group);

	/* Keys whose value was rejected were reported: check only the good. */
	for (int i = 0; i < c->nlisteners; i++) {
		struct cfg_listener *l = &c->listeners[i];
		uint64_t good = l->set & ~l->bad;
		check_required(p, S_LISTENER, l->set, l->line, "listener", l->name);
		if (key_set(good, "program", S_LISTENER) && !config_program(c, l->program))
			add_err(p, l->line, "[listener:%s] feeds program '%s', which is not defined",
				l->name, l->program);
		if (l->owner[0] && lookup_owner(l->owner, msg, sizeof(msg)))
			add_err(p, l->line, "[listener:%s] owner: %s", l->name, msg);
		if (!key_set(good, "address", S_LISTENER))
			continue;
		int is_unix = l->addr.kind == ADDR_UNIX;
		static const char *const tcp_only[] = {
			"tcp_nodelay", "tcp_keepalive", "tcp_keepidle",
			"tcp_keepintvl", "tcp_keepcnt", "tcp_user_timeout", "tcp_defer_accept"};
		for (size_t k = 0; is_unix && k < sizeof(tcp_only) / sizeof(tcp_only[0]); k++)
			if (key_set(l->set, tcp_only[k], S_LISTENER))
				add_err(p, l->line, "[listener:%s] '%s' applies only to TCP listeners",
					l->name, tcp_only[k]);
		if (!is_unix && (key_set(l->set, "mode", S_LISTENER) ||
				 key_set(l->set, "owner", S_LISTENER)))
			add_err(p, l->line, "[listener:%s] mode and owner apply only to unix listeners",
				l->name);
		for (int j = 0; j < i; j++) {
			struct cfg_listener *o = &c->listeners[j];
			int port = 0;
			if (l->addr.kind == ADDR_SYSTEMD && o->addr.kind == ADDR_SYSTEMD &&
			    key_set(o->set & ~o->bad, "address", S_LISTENER) &&
			    strcmp(l->systemd_name, o->systemd_name) == 0) {
				add_err(p, l->line, "[listener:%s] adopts the same systemd socket '%s' as [listener:%s]",
					l->name, l->systemd_name, o->name);
				continue;
			}
			if (l->addr.kind == ADDR_TCP) {
				const struct sockaddr_in *in = (const void *)&l->addr.ss;
				port = in->sin_port; /* same offset for v6 */
			}
			if (key_set(o->set & ~o->bad, "address", S_LISTENER) &&
			    o->addr.len == l->addr.len &&
			    memcmp(&o->addr.ss, &l->addr.ss, l->addr.len) == 0 &&
			    (l->addr.kind == ADDR_UNIX || port != 0))
				add_err(p, l->line, "[listener:%s] has the same address as [listener:%s]",
					l->name, o->name);
		}
	}
	for (int i = 0; i < c->nprograms; i++) {
		struct cfg_program *pr = &c->programs[i];
		check_required(p, S_PROGRAM, pr->set, pr->line, "program", pr->name);
		if (pr->backoff_max < pr->backoff)
			add_err(p, pr->line, "[program:%s] backoff_max is less than backoff", pr->name);
		if (pr->user[0] && !getpwnam(pr->user))
			add_err(p, pr->line, "[program:%s] user: no such user '%s'", pr->name, pr->user);
	}
}

int config_load(const char *path, struct config *cfg, char *err, size_t errlen)
{
	struct parse p = {.cfg = cfg, .path = path, .err = err, .errlen = errlen};

	memset(cfg, 0, sizeof(*cfg));
	if (err && errlen)
		err[0] = '\0';
	if (strlen(path) >= sizeof(cfg->path)) {
		add_err(&p, 0, "path too long");
		return p.nerr;
	}
	strcpy(cfg->path, path);
	p.f = fopen(path, "re");
	if (!p.f) {
		add_err(&p, 0, "cannot open: %s", strerror(errno));
		return p.nerr;
	}
	char *abs = realpath(path, NULL);
	snprintf(p.here, sizeof(p.here), "%s", abs ? abs : path);
	free(abs);
	char *slash = strrchr(p.here, '/');
	if (slash && slash != p.here)
		*slash = '\0';
	else if (slash)
		slash[1] = '\0';
	else
		strcpy(p.here, ".");

	p.sec = S_BATON;
	apply_defaults(&p, S_BATON, &cfg->baton);
	p.sec = S_NONE;
	int rc = ini_parse_stream(reader, &p, handler, &p);
	/* The reader reported (and blanked) every line inih refuses, and the
	 * handler never fails, so rc > 0 means inih and reader() disagree. */
	if (rc > 0 && ferror(p.f) == 0)
		add_err(&p, rc, "syntax error (want [section] or key = value)");
	else if (rc < 0 || ferror(p.f))
		add_err(&p, p.line, "read error");
	fclose(p.f);
	free(p.buf);
	validate(&p);
	if (p.nerr)
		config_free(cfg);
	return p.nerr;
}

void config_free(struct config *cfg)
{
	for (int i = 0; i < cfg->nprograms; i++) {
		config_free_strv(cfg->programs[i].argv);
		config_free_strv(cfg->programs[i].env);
	}
	free(cfg->programs);
	free(cfg->listeners);
	cfg->programs = NULL;
	cfg->listeners = NULL;
	cfg->nprograms = cfg->nlisteners = 0;
}

struct cfg_program *config_program(struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nprograms; i++)
		if (strcmp(cfg->programs[i].name, name) == 0)
			return &cfg->programs[i];
	return NULL;
}

int config_section_set(int sec, void *base, const char *key, const char *value, char *err,
		       size_t errlen)
{
	struct parse p = {.sec = (enum ksec)sec};
	for (size_t i = 0; i < config_nkeys; i++)
		if ((int)config_keys[i].sec == sec && strcmp(config_keys[i].name, key) == 0)
			return set_value(&p, &config_keys[i], base, value, err, errlen);
	return 1;
}

void config_section_defaults(int sec, void *base)
{
	struct parse p = {.sec = sec};
	apply_defaults(&p, (enum ksec)sec, base);
}

int config_restore_section(const struct state_rec *r, int sec, void *base, char *err,
			   size_t errlen)
{
	char msg[256];
	config_section_defaults(sec, base);
	for (int i = 0; i < r->n; i++) {
		const struct state_field *f = &r->f[i];
		if (strncmp(f->key, "cfg.", 4) != 0)
			continue;
		if (memchr(f->val, '\0', f->len) ||
		    config_section_set(sec, base, f->key + 4, f->val, msg, sizeof(msg)) < 0) {
			snprintf(err, errlen, "%s: %s: %s", r->type, f->key,
				 memchr(f->val, '\0', f->len) ? "NUL byte" : msg);
			return -1;
		}
	}
	for (size_t i = 0; i < config_nkeys; i++) {
		char key[64];
		snprintf(key, sizeof(key), "cfg.%s", config_keys[i].name);
		if ((int)config_keys[i].sec == sec && !config_keys[i].def && !state_get(r, key)) {
			snprintf(err, errlen, "%s: %s missing (the key has no default)", r->type, key);
			return -1;
		}
	}
	return 0;
}
