/*
 * The optional HTTP endpoint for probes and scraping (`http` in [baton]):
 *
 *   GET /metrics   the Prometheus text of `batonctl metrics`
 *   GET /healthz   200 while batond's event loop runs
 *   GET /readyz    200 when every program has its full count of RUNNING
 *                  workers, 503 otherwise (and during shutdown)
 *
 * Served on batond's own loop; GET and HEAD only, HTTP/1.0 and 1.1 with
 * keep-alive.  At most 64 clients at once, each request answered within
 * 10 s of its start or closed (httpd.c says why and how).
 */
#ifndef BATON_HTTPD_H
#define BATON_HTTPD_H

#include <stddef.h>

struct cfg_baton;

/* Bind and serve cfg->http (nothing if empty); 0, or -1 with err. */
int httpd_open(const struct cfg_baton *cfg, char *err, size_t errlen);
void httpd_close(void);
/* reexec: the listening socket as an "http" record (its clients are
 * closed by the exec: a scrape tries again), and serving it again in the
 * new image; 0, or -1 with err. */
struct state_out;
struct state_rec;
void httpd_save(struct state_out *o);
int httpd_adopt(const struct cfg_baton *cfg, const struct state_rec *r, char *err,
		size_t errlen);

#endif
