/* scrape.h - /metrics served on an address of its own (PARLEY_METRICS_ADDR),
 * beside the main port. */
#ifndef PARLEY_SCRAPE_H
#define PARLEY_SCRAPE_H

/* Listens on `addr_port` ("127.0.0.1:9100", "[::1]:9100") and answers
 * GET /metrics there, on the loop. Returns 0, or a negative errno (logged):
 * -EINVAL for text that is no address:port, or ws_bind's. */
int scrape_start(const char *addr_port);
/* Closes the listener and every scrape in progress; without one, nothing. */
void scrape_stop(void);

#endif
