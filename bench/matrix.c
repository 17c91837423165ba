/* matrix.c - the TLS benchmark's driver: every (cipher, receiver, streams) row times every
 * mode, one run each per round, rounds interleaved so that a slow spell of the machine
 * hits every cell alike; medians of the rounds; a run disturbed by other load is run
 * again (up to --retries). Then the report: table, CSV/JSON, PNG. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "matrix.h"
#include "progress.h"
#include "tls_bench.h"

static const char *prog_name = "tls_bench";
static struct progress *cur_progress;	/* wiped before a fatal message */

void die(const char *fmt, ...)
{
	va_list ap;

	if (cur_progress)
		progress_clear(cur_progress);
	fflush(stdout);
	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ERR_print_errors_fp(stderr);
	exit(1);
}

const char *bench_rx_name(enum bench_rx rx)
{
	return rx == BENCH_RX_TLS ? "tls" : "discard";
}

/* ---- the matrix ---- */

static void matrix_free(struct bench_matrix *m)
{
	for (size_t r = 0; m->rows && r < m->nrows; r++) {
		for (size_t i = 0; m->rows[r].cells && i < m->o->nmodes; i++)
			free(m->rows[r].cells[i].runs);
		free(m->rows[r].cells);
	}
	free(m->rows);
}

/* Rows in the order cipher, receiver, streams; returns the runs one round takes. */
static size_t matrix_alloc(struct bench_matrix *m)
{
	const struct bench_opts *o = m->o;
	size_t runs = 0;

	m->nrows = o->nciphers * o->nrxs * o->nstreams;
	m->rows = calloc(m->nrows, sizeof(*m->rows));
	if (!m->rows)
		die("out of memory");
	for (size_t r = 0; r < m->nrows; r++) {
		struct bench_row *row = &m->rows[r];

		row->ci = o->ciphers[r / (o->nrxs * o->nstreams)];
		row->rx = o->rxs[r / o->nstreams % o->nrxs];
		row->streams = o->streams[r % o->nstreams];
		row->cells = calloc(o->nmodes, sizeof(*row->cells));
		if (!row->cells)
			die("out of memory");
		for (size_t i = 0; i < o->nmodes; i++) {
			struct bench_cell *c = &row->cells[i];

			c->na = o->modes[i]->ossl && !row->ci->suite;
			c->runs = calloc((size_t)o->rounds, sizeof(*c->runs));
			if (!c->runs)
				die("out of memory");
			runs += !c->na;
		}
	}
	return runs;
}

static void verbose_line(const struct bench_row *row,
			 const struct bench_mode *m, int round, const struct bench_result *x,
			 const char *flag)
{
	printf("%-5d %-12s %-7s %3u  %-17s %7.3f %5.2f %8.3f %8.3f %5.0f%%%s\n", round + 1,
	       row->ci->name, bench_rx_name(row->rx), row->streams, m->name, x->gbps,
	       x->fairness, x->snd_cpu, x->rcv_cpu, 100 * x->other, flag);
	fflush(stdout);
}

/* One cell of one round; a run disturbed by other load is done again (and is shown with
 * --verbose). */
static void run_cell(const struct bench_matrix *m, struct bench_row *row, size_t col,
		     int round, const uint8_t *data, struct progress *pg)
{
	const struct bench_opts *o = m->o;
	struct bench_cell *c = &row->cells[col];
	struct bench_result *x = &c->runs[round];
	struct bench_run p = {
		.mode = o->modes[col], .ci = row->ci, .rx = row->rx, .streams = row->streams,
		.bytes = o->bytes, .seconds = o->seconds, .size = o->size,
		.verify_full = o->verify_full, .read_ahead = o->read_ahead, .data = data,
	};

	for (int a = 0;; a++) {
		bool busy, again;

		bench_run(&p, x);
		busy = x->other > BENCH_OTHER_WARN;
		again = busy && a < o->retries;
		if (o->verbose) {
			progress_clear(pg);
			verbose_line(row, p.mode, round, x, !busy ? "" : again ?
				     " disturbed, again" : " disturbed");
		}
		if (!again)
			break;
		sleep(1);
	}
	c->disturbed += x->other > BENCH_OTHER_WARN;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const struct bench_result *rs, int n, size_t field)
{
	double v[BENCH_MAX_ROUNDS];

	for (int i = 0; i < n; i++)
		v[i] = *(const double *)((const uint8_t *)&rs[i] + field);
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void cell_medians(struct bench_cell *c, int n)
{
#define MED(f) (c->med.f = median(c->runs, n, offsetof(struct bench_result, f)))
	MED(gbps);
	MED(fairness);
	MED(snd_cpu);
	MED(snd_sys);
	MED(rcv_cpu);
	MED(rcv_sys);
	MED(other);
#undef MED
}

static void run_matrix(struct bench_matrix *m, const uint8_t *data, size_t per_round)
{
	const struct bench_opts *o = m->o;
	struct progress pg;
	struct timespec t0, t1;
	char what[96];

	progress_init(&pg, o->progress, per_round * (size_t)o->rounds,
		      o->seconds ? o->seconds + 0.1 : 0);
	cur_progress = &pg;
	if (o->verbose)
		printf("%-5s %-12s %-7s %3s  %-17s %7s %5s %8s %8s %6s\n", "round", "cipher", "rx",
		       "str", "mode", "GB/s", "fair", "snd s/GB", "rcv s/GB", "other");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int round = 0; round < o->rounds; round++) {
		size_t cell = 0;

		for (size_t r = 0; r < m->nrows; r++) {
			struct bench_row *row = &m->rows[r];

			for (size_t i = 0; i < o->nmodes; i++) {
				if (row->cells[i].na)
					continue;
				snprintf(what, sizeof(what), "%s %s x%u %s", row->ci->name,
					 bench_rx_name(row->rx), row->streams, o->modes[i]->name);
				progress_show(&pg, ++cell, per_round, round + 1, o->rounds, what);
				run_cell(m, row, i, round, data, &pg);
				progress_step(&pg);
			}
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	progress_end(&pg);
	if (o->verbose)
		printf("\n");
	cur_progress = NULL;
	m->elapsed = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	for (size_t r = 0; r < m->nrows; r++)
		for (size_t i = 0; i < o->nmodes; i++)
			if (!m->rows[r].cells[i].na)
				cell_medians(&m->rows[r].cells[i], o->rounds);
}

static bool want_openssl(const struct bench_opts *o)
{
	bool mode = false, suite = false;

	for (size_t i = 0; i < o->nmodes; i++)
		mode |= o->modes[i]->ossl;
	for (size_t i = 0; i < o->nciphers; i++)
		suite |= o->ciphers[i]->suite != NULL;
	return mode && suite;
}

int tls_bench_main(const char *prog, int argc, char **argv, const char *default_plot)
{
	struct bench_opts o = { .prog = prog };
	struct bench_matrix m = { .o = &o };
	size_t per_round;
	uint8_t *data;
	int r, ret = 0;

	r = bench_opts_parse(&o, argc, argv, default_plot);
	if (r >= 0)
		return r;
	prog_name = prog;
	signal(SIGPIPE, SIG_IGN);
	bench_transports_init(want_openssl(&o), o.read_ahead);

	/* Random payload, so no layer can profit from a pattern. */
	data = malloc(o.size);
	if (!data || RAND_bytes(data, (int)o.size) != 1)
		die("payload");
	per_round = matrix_alloc(&m);
	bench_report_header(&m);
	if (per_round)
		run_matrix(&m, data, per_round);
	bench_report_table(&m);

	if (o.csv && bench_report_csv(&m, o.csv))
		ret = 1;
	if (o.json && bench_report_json(&m, o.json))
		ret = 1;
	if (o.plot && bench_report_plot(&m, o.plot))
		ret = 1;
	matrix_free(&m);
	free(data);
	bench_transports_free();
	return ret;
}
