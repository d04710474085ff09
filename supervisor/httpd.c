/* The HTTP endpoint for probes and Prometheus: see httpd.h. */
#include "httpd.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "batond.h"
#include "config.h"
#include "log.h"
#include "report.h"
#include "util.h"

#define HTTPD_TIMEOUT_SEC 10
#define HTTPD_MAX_HEADERS 8192

static struct {
	struct evhttp *http;
	char address[CFG_STR_MAX];
} hd;

static void reply(struct evhttp_request *req, int code, const char *reason,
		  const char *type, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* evhttp would send the body: give its length, send none */
		char len[24];
		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
		evhttp_add_header(h, "Content-Length", len);
		evhttp_send_reply(req, code, reason, NULL);
		return;
	}
	evhttp_send_reply(req, code, reason, body);
}

static void text_reply(struct evhttp_request *req, int code, const char *reason,
		       const char *text)
{
	struct evbuffer *body = evbuffer_new();
	if (!body) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evbuffer_add_printf(body, "%s\n", text);
	reply(req, code, reason, "text/plain; charset=utf-8", body);
	evbuffer_free(body);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	const struct evhttp_uri *parsed = evhttp_request_get_evhttp_uri(req);
	const char *path = parsed ? evhttp_uri_get_path(parsed) : NULL;
	char line[512];
	(void)arg;

	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		text_reply(req, 405, "Method Not Allowed", "method not allowed: GET or HEAD");
		return;
	}
	if (!path || !uri) {
		text_reply(req, HTTP_BADREQUEST, "Bad Request", "bad request");
		return;
	}
	if (strcmp(path, "/metrics") == 0) {
		struct evbuffer *body = evbuffer_new();
		if (!body) {
			evhttp_send_error(req, HTTP_INTERNAL, NULL);
			return;
		}
		report_metrics(body);
		reply(req, HTTP_OK, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
		evbuffer_free(body);
	} else if (strcmp(path, "/healthz") == 0) {
		text_reply(req, HTTP_OK, "OK", batond.shutting_down ? "ok (shutting down)" : "ok");
	} else if (strcmp(path, "/readyz") == 0) {
		char counts[448];
		int ready = report_readiness(counts, sizeof(counts));
		if (batond.shutting_down) {
			text_reply(req, 503, "Service Unavailable", "not ready: shutting down");
			return;
		}
		snprintf(line, sizeof(line), "%s: %s", ready ? "ready" : "not ready", counts);
		text_reply(req, ready ? HTTP_OK : 503, ready ? "OK" : "Service Unavailable", line);
	} else {
		text_reply(req, HTTP_NOTFOUND, "Not Found",
			   "not found: try /metrics, /healthz or /readyz");
	}
}

int httpd_open(const struct cfg_baton *cfg, char *err, size_t errlen)
{
	char bound[128];
	int fd = -1, one = 1;

	if (!cfg->http[0])
		return 0;
	const struct addr *a = &cfg->http_addr;
	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 128) < 0)
		goto fail;
	hd.http = evhttp_new(batond.base);
	if (!hd.http) {
		snprintf(err, errlen, "http %s: out of memory", cfg->http);
		close(fd);
		return -1;
	}
	evhttp_set_timeout(hd.http, HTTPD_TIMEOUT_SEC);
	evhttp_set_max_headers_size(hd.http, HTTPD_MAX_HEADERS);
	evhttp_set_max_body_size(hd.http, 0);
	/* Every method reaches on_request, which answers 405 to all but
	 * GET and HEAD (evhttp itself would say 501). */
	evhttp_set_allowed_methods(hd.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(hd.http, on_request, NULL);
	if (!evhttp_accept_socket_with_handle(hd.http, fd)) {
		snprintf(err, errlen, "http %s: cannot serve the socket", cfg->http);
		evhttp_free(hd.http);
		hd.http = NULL;
		close(fd);
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		addr_format((struct sockaddr *)&ss, len, bound, sizeof(bound));
	else
		snprintf(bound, sizeof(bound), "?");
	snprintf(hd.address, sizeof(hd.address), "%s", cfg->http);
	log_info("http endpoint address=%s bound=%s paths=/metrics,/healthz,/readyz", cfg->http,
		 bound);
	return 0;
fail:
	snprintf(err, errlen, "http %s: %s", cfg->http, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

void httpd_close(void)
{
	if (hd.http)
		evhttp_free(hd.http); /* closes the bound socket too */
	hd.http = NULL;
	hd.address[0] = '\0';
}
