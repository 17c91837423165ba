/* xfer.h - bulk transfer over a ulpo TLS socket for the demo and the interop tests:
 * a seeded byte pattern both ways at once (a sender thread, the caller receiving),
 * checked byte for byte, plus small TCP and pipe helpers around it. */
#ifndef ULPO_TOOLS_XFER_H
#define ULPO_TOOLS_XFER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A deterministic byte stream: the same seed gives the same bytes however it is cut.
 * The text form (letters, digits, '\n') is for line-oriented peers such as
 * gnutls-serv --echo, which treat data as C strings. */
struct pat {
	uint64_t s;
	uint64_t word;
	unsigned int left;	/* bytes of word not yet used */
	bool text;
};

void pat_init(struct pat *p, uint64_t seed, bool text);
void pat_fill(struct pat *p, void *buf, size_t len);
/* Compare len bytes against the stream; returns the offset of the first difference
 * or len when equal. The stream advances by len either way. */
size_t pat_check(struct pat *p, const void *buf, size_t len);

struct xfer {
	int fd;			/* keyed ulpo socket */
	uint64_t send_len, recv_len;	/* bytes each way */
	uint64_t send_seed, recv_seed;
	bool text;
	unsigned int max_chunk;	/* largest single send (default 256 KiB); sizes vary */
	/* Progress, for display while running: relaxed atomics, nothing is ordered by
	 * them. The results below are read after xfer_run has joined its thread. */
	_Atomic uint64_t sent, received;
	/* results */
	uint64_t ctl_records;	/* non-data records received and skipped (tickets) */
	bool peer_closed;	/* close_notify or EOF seen after all data */
	char err[256];
};

/* Run both directions to completion. Returns 0 when everything sent was accepted and
 * everything expected arrived intact; -1 with x->err set otherwise. progress, if set,
 * is called from the receiving thread about every 250 ms, and once at the end. */
int xfer_run(struct xfer *x, void (*progress)(const struct xfer *x, void *arg), void *arg);

/* End the session: send a close_notify alert record, shut down writing, and wait up
 * to timeout_ms for the peer's close_notify or EOF. -1 with x->err if the peer sent
 * data past what was expected. */
int xfer_close(struct xfer *x, int timeout_ms);

/* Write len bytes of the pattern to fd (a pipe to a peer's stdin). With hold, stay
 * until the reader goes away, so a peer that quits on EOF of stdin keeps running. */
int pipe_gen(int fd, uint64_t seed, uint64_t len, bool text, bool hold, char *err,
	     size_t errlen);
/* Read fd (a peer's stdout) to EOF and check it is exactly len bytes of the pattern. */
int pipe_check(int fd, uint64_t seed, uint64_t len, bool text, _Atomic uint64_t *progress,
	       char *err, size_t errlen);

/* TCP to 127.0.0.1:port, retried while refused (the peer may not listen yet). */
int tcp_connect_retry(int port, int timeout_ms, char *err, size_t errlen);
/* A listening socket on 127.0.0.1, port chosen by the kernel. */
int tcp_listen_any(int *ret_port);
/* A port that was free a moment ago, for peers that want one on the command line. */
int tcp_free_port(void);

#endif
