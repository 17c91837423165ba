/* matrix.h - the TLS benchmark's matrix: options (opts.c), the driver that runs every
 * (cipher, receiver, streams, mode) cell in interleaved rounds (matrix.c), and the report
 * of the medians as a table (report.c) and as CSV, JSON and a PNG chart (export.c). */
#ifndef ULPO_BENCH_MATRIX_H
#define ULPO_BENCH_MATRIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"

#define BENCH_MAX_LIST 8		/* entries in each of the lists */
#define BENCH_MAX_ROUNDS 64
#define BENCH_MAX_STREAMS 64
#define BENCH_OTHER_WARN 0.10		/* machine busy outside us: flag the run */

struct bench_opts {
	const char *prog;		/* for messages: "tls_bench", "ulpo bench tls" */
	const struct bench_cipher *ciphers[BENCH_MAX_LIST];
	enum bench_rx rxs[BENCH_MAX_LIST];
	unsigned int streams[BENCH_MAX_LIST];
	const struct bench_mode *modes[BENCH_MAX_LIST];
	size_t nciphers, nrxs, nstreams, nmodes;
	uint64_t bytes;			/* per run, all streams together; 0: seconds */
	double seconds;			/* per run */
	size_t size;			/* bytes per write and per read */
	int rounds;
	int retries;			/* of a run disturbed by other load */
	bool quick;
	bool verify_full, read_ahead;
	bool verbose;			/* every run on stdout */
	bool progress;			/* the progress bar on stderr */
	const char *plot, *csv, *json;	/* output files, NULL for none */
};

/* Fills *o from the command line; prints usage and returns 2 (bad usage) or 0 after
 * --help (the caller exits with it), -1 to go on. */
int bench_opts_parse(struct bench_opts *o, int argc, char **argv, const char *default_plot);

/* One cell: a mode in a row; its runs and their medians. */
struct bench_cell {
	bool na;			/* cannot run (openssl has no suite for the cipher) */
	int disturbed;			/* kept runs with other load above BENCH_OTHER_WARN */
	struct bench_result *runs;	/* [rounds] */
	struct bench_result med;
};

struct bench_row {
	const struct bench_cipher *ci;
	enum bench_rx rx;
	unsigned int streams;
	struct bench_cell *cells;	/* [nmodes], in the order of o->modes */
};

struct bench_matrix {
	const struct bench_opts *o;
	struct bench_row *rows;
	size_t nrows;
	double elapsed;			/* seconds the whole matrix took */
};

const char *bench_rx_name(enum bench_rx rx);

/* The ratios the goals ask about, for one row; NAN where a side was not measured. */
struct bench_ratios {
	double a2_inl;			/* ulpo-async2 / ulpo (inline) */
	double best_ossl, inl_ossl;	/* the fastest ulpo mode, inline / openssl */
	double best_tcp, inl_tcp;	/* ... / tcp */
	const char *best;		/* the fastest ulpo mode, NULL if none */
};
void bench_row_ratios(const struct bench_matrix *m, const struct bench_row *row,
		      struct bench_ratios *ret);

/* report.c: text on stdout */
void bench_report_header(const struct bench_matrix *m);
void bench_report_table(const struct bench_matrix *m);
/* export.c: 0 or a negative errno (and a message saying what failed) */
int bench_report_csv(const struct bench_matrix *m, const char *path);
int bench_report_json(const struct bench_matrix *m, const char *path);
int bench_report_plot(const struct bench_matrix *m, const char *path);

#endif
