/* http.h - the server's HTTP layer over libmicrohttpd: routing, API key check, body
 * limits, JSON answers for every endpoint, the embedded web page.
 *
 * Sits above the job queue (jobs.h) and the request parser (request.h); serve.c owns
 * the daemon's life cycle (start, signals, shutdown). One thread per connection (MHD),
 * so a synchronous generation request simply blocks its own thread until its job ends. */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stddef.h>

#include "jobs.h"

typedef struct {
    srv_jobs *jobs;
    const char *model_name;
    const char *api_key;     /* NULL: no authentication */
    size_t max_body;         /* bytes */
    unsigned timeout;        /* seconds of client inactivity before the connection is dropped */
    int verbose;             /* one log line per request on stderr */
    int in_flight;           /* requests between their headers and their completion (atomic) */
} srv_http;

struct MHD_Daemon;

/* Start listening on host:port (host: IPv4 or IPv6 literal; port 0: any free port).
 * *bound_port gets the real port. max_conn: simultaneous connections (threads).
 * Returns the daemon or NULL with a message in err. */
struct MHD_Daemon *srv_http_start(srv_http *h, const char *host, int port, int max_conn, int *bound_port, char *err,
                                  size_t errcap);

/* Shutdown: wait (at most max_seconds) until every request in flight has been answered and
 * its answer sent, so that MHD_stop_daemon does not close a connection whose 503 is still
 * queued. Returns the number still in flight (stalled clients) when it gives up. */
int srv_http_drain(srv_http *h, double max_seconds);

/* The embedded web page (page.html, built into the binary). */
extern const char srv_page_html[];
extern const unsigned srv_page_html_len;

#endif
