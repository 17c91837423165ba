/* report.c - the TLS benchmark's results on stdout: the header, the table (GB/s per mode
 * and the ratios the goals ask about), CPU per GB, fairness, the goals themselves. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <ulpo/ulpo.h>

#include "matrix.h"

/* The goals of issue 3. */
#define GOAL_SM4_ASYNC2 1.8		/* SM4-GCM TX: ulpo-async2 / ulpo inline */
#define GOAL_AES_OSSL 1.6		/* AES-128-GCM full TLS: ulpo / openssl */

/* The cell of the mode called `name` in a row; NULL if not in the list or n/a. */
static const struct bench_cell *cell_of(const struct bench_matrix *m,
					const struct bench_row *row, const char *name)
{
	for (size_t i = 0; i < m->o->nmodes; i++)
		if (!strcmp(m->o->modes[i]->name, name))
			return row->cells[i].na ? NULL : &row->cells[i];
	return NULL;
}

static double ratio(const struct bench_cell *a, const struct bench_cell *b)
{
	return a && b && b->med.gbps > 0 ? a->med.gbps / b->med.gbps : NAN;
}

void bench_row_ratios(const struct bench_matrix *m, const struct bench_row *row,
		      struct bench_ratios *r)
{
	const struct bench_cell *inl = cell_of(m, row, "ulpo"), *best = NULL;
	const struct bench_cell *tcp = cell_of(m, row, "tcp"), *ossl = cell_of(m, row, "openssl");

	r->best = NULL;
	for (size_t i = 0; i < m->o->nmodes; i++) {
		const struct bench_cell *c = &row->cells[i];

		if (m->o->modes[i]->ulpo && !c->na && (!best || c->med.gbps > best->med.gbps)) {
			best = c;
			r->best = m->o->modes[i]->name;
		}
	}
	r->a2_inl = ratio(cell_of(m, row, "ulpo-async2"), inl);
	r->best_ossl = ratio(best, ossl);
	r->inl_ossl = ratio(inl, ossl);
	r->best_tcp = ratio(best, tcp);
	r->inl_tcp = ratio(inl, tcp);
}

static bool have_mode(const struct bench_matrix *m, const char *name)
{
	for (size_t i = 0; i < m->o->nmodes; i++)
		if (!strcmp(m->o->modes[i]->name, name))
			return true;
	return false;
}

static bool have_ulpo(const struct bench_matrix *m)
{
	for (size_t i = 0; i < m->o->nmodes; i++)
		if (m->o->modes[i]->ulpo)
			return true;
	return false;
}

/* ---- text ---- */

void bench_report_header(const struct bench_matrix *m)
{
	const struct bench_opts *o = m->o;
	const char *be = getenv("ULPO_AEAD_BACKEND");
	struct ulpo_engine_config cfg;

	bench_engine_base(&cfg);
	printf("%s: %zu-byte writes, ", o->prog, o->size);
	if (o->seconds)
		printf("%.2g s per run", o->seconds);
	else
		printf("%.3g MiB per run", (double)o->bytes / (1 << 20));
	printf(", %d round%s (medians)%s\n", o->rounds, o->rounds > 1 ? "s" : "",
	       o->quick ? ", quick: not for numbers" : "");
	printf("  TLS 1.3; ulpo %s, AEAD backend %s, in-flight bound per socket ", ulpo_version(),
	       be ? be : "auto");
	if (cfg.max_records_in_flight)
		printf("%u records", cfg.max_records_in_flight);
	else
		printf("default");
	if (cfg.max_bytes_in_flight)
		printf(" / %zu KiB", cfg.max_bytes_in_flight >> 10);
	printf("; %s (its kTLS off%s)\n", OpenSSL_version(OPENSSL_VERSION),
	       o->read_ahead ? ", read-ahead on" : "");
	printf("  rx discard: the receiver drops the raw TCP bytes; rx tls: full TLS both ends, "
	       "block stamps checked%s\n\n", o->verify_full ? ", every byte compared" : "");
	fflush(stdout);
}

static int col_width(const char *name, int min)
{
	int n = (int)strlen(name);

	return n > min ? n : min;
}

static void print_row_key(const struct bench_row *row)
{
	printf("%-12s %-7s %3u ", row->ci->name, bench_rx_name(row->rx), row->streams);
}

static void print_key_header(void)
{
	printf("%-12s %-7s %3s ", "cipher", "rx", "str");
}

static void print_ratio(const char *name, double v, bool show)
{
	if (!show)
		return;
	if (isnan(v))
		printf(" %*s", col_width(name, 5), "-");
	else
		printf(" %*.2f", col_width(name, 5), v);
}

static void table_gbps(const struct bench_matrix *m)
{
	const struct bench_opts *o = m->o;
	bool a2 = have_mode(m, "ulpo-async2") && have_mode(m, "ulpo");
	bool ulpo = have_ulpo(m), inl = have_mode(m, "ulpo");
	bool ossl = have_mode(m, "openssl"), tcp = have_mode(m, "tcp");
	int disturbed = 0;

	printf("GB/s, all streams together (* a kept run was disturbed)\n");
	print_key_header();
	for (size_t i = 0; i < o->nmodes; i++)
		printf(" %*s ", col_width(o->modes[i]->name, 7), o->modes[i]->name);
	printf(" |");
	if (a2)
		printf(" %s", "a2/inl");
	if (ulpo && ossl)
		printf(" %s", "best/ossl");
	if (inl && ossl)
		printf(" %s", "inl/ossl");
	if (ulpo && tcp)
		printf(" %s", "best/tcp");
	if (inl && tcp)
		printf(" %s", "inl/tcp");
	printf("\n");
	for (size_t r = 0; r < m->nrows; r++) {
		const struct bench_row *row = &m->rows[r];
		struct bench_ratios q;

		print_row_key(row);
		for (size_t i = 0; i < o->nmodes; i++) {
			const struct bench_cell *c = &row->cells[i];
			int w = col_width(o->modes[i]->name, 7);

			if (c->na)
				printf(" %*s ", w, "n/a");
			else
				printf(" %*.3f%c", w, c->med.gbps, c->disturbed ? '*' : ' ');
			disturbed += c->disturbed;
		}
		bench_row_ratios(m, row, &q);
		printf(" |");
		print_ratio("a2/inl", q.a2_inl, a2);
		print_ratio("best/ossl", q.best_ossl, ulpo && ossl);
		print_ratio("inl/ossl", q.inl_ossl, inl && ossl);
		print_ratio("best/tcp", q.best_tcp, ulpo && tcp);
		print_ratio("inl/tcp", q.inl_tcp, inl && tcp);
		printf("\n");
	}
	if (ulpo && (ossl || tcp))
		printf("%sbest: the row's fastest ulpo mode; inl: ulpo (inline)\n",
		       a2 ? "a2/inl: ulpo-async2 / ulpo (inline); " : "");
	else if (a2)
		printf("a2/inl: ulpo-async2 / ulpo (inline)\n");
	if (disturbed)
		printf("* %d kept run%s disturbed: other processes took more than %.0f%% of the "
		       "CPUs meanwhile;\n  those figures say more about the machine than about "
		       "ulpo\n", disturbed, disturbed > 1 ? "s" : "", 100 * BENCH_OTHER_WARN);
}

static void table_cpu(const struct bench_matrix *m)
{
	const struct bench_opts *o = m->o;
	char v[32];

	printf("\nCPU seconds per GB: sender side (sender threads + engine workers) / "
	       "receiver threads\n");
	print_key_header();
	for (size_t i = 0; i < o->nmodes; i++)
		printf(" %*s", col_width(o->modes[i]->name, 11), o->modes[i]->name);
	printf("\n");
	for (size_t r = 0; r < m->nrows; r++) {
		const struct bench_row *row = &m->rows[r];

		print_row_key(row);
		for (size_t i = 0; i < o->nmodes; i++) {
			const struct bench_cell *c = &row->cells[i];

			if (c->na)
				snprintf(v, sizeof(v), "n/a");
			else
				snprintf(v, sizeof(v), "%.2f/%.2f", c->med.snd_cpu, c->med.rcv_cpu);
			printf(" %*s", col_width(o->modes[i]->name, 11), v);
		}
		printf("\n");
	}
}

static void table_fairness(const struct bench_matrix *m)
{
	const struct bench_opts *o = m->o;
	bool any = false;

	for (size_t r = 0; r < m->nrows; r++) {
		const struct bench_row *row = &m->rows[r];

		if (row->streams < 2)
			continue;
		if (!any) {
			printf("\nfairness: the slowest stream's rate / the mean (1.00 = even)\n");
			print_key_header();
			for (size_t i = 0; i < o->nmodes; i++)
				printf(" %*s", col_width(o->modes[i]->name, 7), o->modes[i]->name);
			printf("\n");
			any = true;
		}
		print_row_key(row);
		for (size_t i = 0; i < o->nmodes; i++) {
			if (row->cells[i].na)
				printf(" %*s", col_width(o->modes[i]->name, 7), "n/a");
			else
				printf(" %*.2f", col_width(o->modes[i]->name, 7),
				       row->cells[i].med.fairness);
		}
		printf("\n");
	}
}

/* "1 stream 1.63 (ulpo-async2), 4 streams 1.85": the rows of one cipher and receiver. */
static bool goal_line(const struct bench_matrix *m, const char *cipher, enum bench_rx rx,
		      bool ossl, double goal)
{
	bool any = false, met = true;

	for (size_t r = 0; r < m->nrows; r++) {
		const struct bench_row *row = &m->rows[r];
		struct bench_ratios q;
		double v;

		if (strcmp(row->ci->name, cipher) || row->rx != rx)
			continue;
		bench_row_ratios(m, row, &q);
		v = ossl ? q.best_ossl : q.a2_inl;
		if (isnan(v))
			continue;
		printf("%s %u stream%s %.2f", any ? "," : "", row->streams,
		       row->streams > 1 ? "s" : "", v);
		if (ossl)
			printf(" (%s)", q.best);
		met &= v >= goal;
		any = true;
	}
	if (any)
		printf(": %s\n", met ? "met" : "not met");
	return any;
}

static void goals(const struct bench_matrix *m)
{
	printf("\ngoals\n  SM4-GCM TX (rx discard), ulpo-async2 / ulpo inline >= %.1f:",
	       GOAL_SM4_ASYNC2);
	if (!goal_line(m, "sm4-gcm", BENCH_RX_DISCARD, false, GOAL_SM4_ASYNC2))
		printf(" not measured\n");
	printf("  AES-128-GCM full TLS, best ulpo / openssl >= %.1f:", GOAL_AES_OSSL);
	if (!goal_line(m, "aes-128-gcm", BENCH_RX_TLS, true, GOAL_AES_OSSL))
		printf(" not measured\n");
	/* Where ulpo stands against plaintext TCP, a line per cipher. */
	for (size_t r = 0; r < m->nrows; r++) {
		const struct bench_row *row = &m->rows[r];
		struct bench_ratios q;

		bench_row_ratios(m, row, &q);
		if (isnan(q.best_tcp))
			continue;
		if (!r || strcmp(m->rows[r - 1].ci->name, row->ci->name))
			printf("  %s, best ulpo / tcp:", row->ci->name);
		else
			printf(",");
		printf(" %s x%u %.2f", bench_rx_name(row->rx), row->streams, q.best_tcp);
		if (r + 1 == m->nrows || strcmp(m->rows[r + 1].ci->name, row->ci->name))
			printf("\n");
	}
}

void bench_report_table(const struct bench_matrix *m)
{
	unsigned long t = (unsigned long)(m->elapsed + 0.5);

	table_gbps(m);
	table_cpu(m);
	table_fairness(m);
	goals(m);
	for (size_t c = 0; c < m->o->nciphers; c++)
		if (!m->o->ciphers[c]->suite && have_mode(m, "openssl"))
			printf("n/a: OpenSSL has no TLS 1.3 suite for %s\n",
			       m->o->ciphers[c]->name);
	printf("%lu:%02lu for the whole matrix\n", t / 60, t % 60);
	fflush(stdout);
}
