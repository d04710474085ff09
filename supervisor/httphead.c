#include "httphead.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static enum http_route route_of(const char *target)
{
	size_t scheme = strncasecmp(target, "http://", 7) == 0	  ? 7
			: strncasecmp(target, "https://", 8) == 0 ? 8
								  : 0;
	const char *path = target;
	if (scheme) {
		path = strchr(target + scheme, '/');
		if (!path)
			path = "/";
	} else if (target[0] != '/') {
		return HR_BAD;
	}
	size_t len = strcspn(path, "?#");
	static const struct {
		const char *path;
		enum http_route route;
	} routes[] = {{"/metrics", HR_METRICS}, {"/healthz", HR_HEALTHZ}, {"/readyz", HR_READYZ}};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strlen(routes[i].path) == len && strncmp(path, routes[i].path, len) == 0)
			return routes[i].route;
	return HR_NOTFOUND;
}

/* "METHOD SP request-target SP HTTP/1.x": 0, or the status to reject with. */
static int request_line(struct http_head *h, char *line)
{
	static const char *const others[] = {"POST",	"PUT",	 "DELETE", "OPTIONS",
					     "PATCH", "TRACE", "CONNECT"};
	char *sp1 = strchr(line, ' '), *sp2 = strrchr(line, ' ');
	if (!sp1 || sp2 == sp1)
		return 400;
	*sp1 = *sp2 = '\0';
	const char *method = line, *target = sp1 + 1, *version = sp2 + 1;

	if (strncmp(version, "HTTP/", 5) != 0 || !isdigit((unsigned char)version[5]) ||
	    version[6] != '.' || !isdigit((unsigned char)version[7]) || version[8])
		return 400;
	if (version[5] != '1')
		return 505;
	h->minor = version[7] == '0' ? 0 : 1;
	if (!target[0] || strpbrk(target, " \t"))
		return 400;
	size_t mlen = strlen(method);
	if (mlen == 0 || mlen > 16)
		return 400;
	for (size_t i = 0; i < mlen; i++)
		if (method[i] < 'A' || method[i] > 'Z')
			return 400;
	if (strcmp(method, "GET") == 0) {
		h->method = HM_GET;
	} else if (strcmp(method, "HEAD") == 0) {
		h->method = HM_HEAD;
	} else {
		h->method = HM_UNKNOWN;
		for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
			if (strcmp(method, others[i]) == 0)
				h->method = HM_OTHER;
	}
	h->route = route_of(target);
	return 0;
}

/* Does the comma-separated list value hold token (any case)? */
static int has_token(const char *value, const char *token)
{
	size_t tl = strlen(token);
	for (const char *p = value; *p;) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, ",");
		size_t t = n;
		while (t > 0 && (p[t - 1] == ' ' || p[t - 1] == '\t'))
			t--;
		if (t == tl && strncasecmp(p, token, tl) == 0)
			return 1;
		p += n;
	}
	return 0;
}

/* One "Name: value" line; only what decides the answer is kept.  0 or 400. */
static int header(struct http_head *h, char *line)
{
	char *colon = strchr(line, ':');
	/* no name, or whitespace in it (obsolete line folding included) */
	if (!colon || colon == line || strcspn(line, " \t") < (size_t)(colon - line))
		return 400;
	*colon = '\0';
	const char *value = colon + 1;
	if (strcasecmp(line, "Connection") == 0) {
		h->conn_close |= has_token(value, "close");
		h->conn_keepalive |= has_token(value, "keep-alive");
	} else if (strcasecmp(line, "Content-Length") == 0) {
		value += strspn(value, " \t");
		size_t zeros = strspn(value, "0");
		if (zeros == 0 || value[zeros + strspn(value + zeros, " \t")])
			h->has_body = 1; /* not 0: a body, or nonsense */
	} else if (strcasecmp(line, "Transfer-Encoding") == 0) {
		h->has_body = 1;
	}
	return 0;
}

int http_head_line(struct http_head *h, char *line, size_t len)
{
	if (strlen(line) != len) /* a NUL byte */
		return 400;
	if (!h->in_headers) {
		if (len == 0)
			return 0; /* empty lines before a request are allowed */
		h->in_headers = 1;
		return request_line(h, line);
	}
	if (len == 0)
		return 1;
	return header(h, line);
}
