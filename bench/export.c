/* export.c - the TLS benchmark's medians for machines and eyes: CSV, JSON and a grouped
 * bar chart as PNG (tools/plot.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <ulpo/ulpo.h>

#include "matrix.h"
#include "plot.h"

static FILE *out_open(const struct bench_matrix *m, const char *path)
{
	FILE *f = fopen(path, "we");

	if (!f)
		fprintf(stderr, "%s: %s: %s\n", m->o->prog, path, strerror(errno));
	return f;
}

static int out_close(const struct bench_matrix *m, const char *path, FILE *f)
{
	int err = ferror(f) ? EIO : 0;

	if (fclose(f) && !err)
		err = errno;
	if (err)
		fprintf(stderr, "%s: %s: %s\n", m->o->prog, path, strerror(err));
	return -err;
}

int bench_report_csv(const struct bench_matrix *m, const char *path)
{
	FILE *f = out_open(m, path);

	if (!f)
		return -errno;
	fprintf(f, "cipher,rx,streams,mode,status,gbps,fairness,snd_cpu_s_per_gb,"
		   "snd_sys_s_per_gb,rcv_cpu_s_per_gb,rcv_sys_s_per_gb,other,disturbed,rounds,"
		   "size,seconds,bytes\n");
	for (size_t r = 0; r < m->nrows; r++) {
		const struct bench_row *row = &m->rows[r];

		for (size_t i = 0; i < m->o->nmodes; i++) {
			const struct bench_cell *c = &row->cells[i];
			const struct bench_result *x = &c->med;

			fprintf(f, "%s,%s,%u,%s,", row->ci->name, bench_rx_name(row->rx),
				row->streams, m->o->modes[i]->name);
			if (c->na)
				fprintf(f, "n/a,,,,,,,,,");
			else
				fprintf(f, "ok,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%d,", x->gbps,
					x->fairness, x->snd_cpu, x->snd_sys, x->rcv_cpu, x->rcv_sys,
					x->other, c->disturbed);
			fprintf(f, "%d,%zu,%g,%llu\n", m->o->rounds, m->o->size, m->o->seconds,
				(unsigned long long)m->o->bytes);
		}
	}
	return out_close(m, path, f);
}

static void json_num(FILE *f, const char *key, double v, bool comma)
{
	if (isnan(v))
		fprintf(f, "\"%s\": null%s", key, comma ? ", " : "");
	else
		fprintf(f, "\"%s\": %.4f%s", key, v, comma ? ", " : "");
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_row(FILE *f, const struct bench_matrix *m, const struct bench_row *row)
{
	struct bench_ratios q;

	fprintf(f, "    {\"cipher\": \"%s\", \"rx\": \"%s\", \"streams\": %u,\n      \"modes\": {",
		row->ci->name, bench_rx_name(row->rx), row->streams);
	for (size_t i = 0; i < m->o->nmodes; i++) {
		const struct bench_cell *c = &row->cells[i];

		fprintf(f, "%s\n        \"%s\": ", i ? "," : "", m->o->modes[i]->name);
		if (c->na) {
			fprintf(f, "null");
			continue;
		}
		fprintf(f, "{");
		json_num(f, "gbps", c->med.gbps, true);
		json_num(f, "fairness", c->med.fairness, true);
		json_num(f, "snd_cpu_s_per_gb", c->med.snd_cpu, true);
		json_num(f, "snd_sys_s_per_gb", c->med.snd_sys, true);
		json_num(f, "rcv_cpu_s_per_gb", c->med.rcv_cpu, true);
		json_num(f, "rcv_sys_s_per_gb", c->med.rcv_sys, true);
		json_num(f, "other", c->med.other, true);
		fprintf(f, "\"disturbed\": %d, \"runs_gbps\": [", c->disturbed);
		for (int k = 0; k < m->o->rounds; k++)
			fprintf(f, "%s%.4f", k ? ", " : "", c->runs[k].gbps);
		fprintf(f, "]}");
	}
	bench_row_ratios(m, row, &q);
	fprintf(f, "},\n      \"ratios\": {");
	json_num(f, "async2_inline", q.a2_inl, true);
	json_num(f, "best_openssl", q.best_ossl, true);
	json_num(f, "inline_openssl", q.inl_ossl, true);
	json_num(f, "best_tcp", q.best_tcp, true);
	json_num(f, "inline_tcp", q.inl_tcp, true);
	fprintf(f, "\"best\": ");
	if (q.best)
		json_str(f, q.best);
	else
		fprintf(f, "null");
	fprintf(f, "}}");
}

int bench_report_json(const struct bench_matrix *m, const char *path)
{
	const struct bench_opts *o = m->o;
	const char *be = getenv("ULPO_AEAD_BACKEND");
	FILE *f = out_open(m, path);

	if (!f)
		return -errno;
	fprintf(f, "{\n  \"bench\": \"tls\", \"tls\": \"1.3\", \"size\": %zu, \"seconds\": %g, "
		   "\"bytes\": %llu, \"rounds\": %d, \"quick\": %s,\n  \"ulpo\": ", o->size,
		o->seconds, (unsigned long long)o->bytes, o->rounds, o->quick ? "true" : "false");
	json_str(f, ulpo_version());
	fprintf(f, ", \"aead_backend\": ");
	json_str(f, be ? be : "auto");
	fprintf(f, ", \"openssl\": ");
	json_str(f, OpenSSL_version(OPENSSL_VERSION));
	fprintf(f, ", \"elapsed_s\": %.1f,\n  \"rows\": [\n", m->elapsed);
	for (size_t r = 0; r < m->nrows; r++) {
		json_row(f, m, &m->rows[r]);
		fprintf(f, "%s\n", r + 1 < m->nrows ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	return out_close(m, path, f);
}

/* ---- picture ---- */

/* A group per row, a bar per mode; n/a cells draw no bar. */
int bench_report_plot(const struct bench_matrix *m, const char *path)
{
	const struct bench_opts *o = m->o;
	struct plot_series series[BENCH_MAX_LIST];
	double *vals = calloc(m->nrows * o->nmodes + 1, sizeof(*vals));
	char **labels = calloc(m->nrows + 1, sizeof(*labels)), title[160];
	struct plot_bars p = {
		.title = title, .ylabel = "GB/s", .groups = (const char *const *)labels,
		.ngroups = m->nrows, .series = series, .nseries = o->nmodes,
	};
	int err = -ENOMEM;

	if (!vals || !labels)
		goto out;
	for (size_t r = 0; r < m->nrows; r++) {
		const struct bench_row *row = &m->rows[r];

		if (asprintf(&labels[r], "%s %s x%u", row->ci->name, bench_rx_name(row->rx),
			     row->streams) < 0) {
			labels[r] = NULL;
			goto out;
		}
		for (size_t i = 0; i < o->nmodes; i++)
			vals[i * m->nrows + r] = row->cells[i].na ? NAN : row->cells[i].med.gbps;
	}
	for (size_t i = 0; i < o->nmodes; i++) {
		series[i].name = o->modes[i]->name;
		series[i].values = &vals[i * m->nrows];
	}
	snprintf(title, sizeof(title), "ulpo bench tls: %zu-byte writes, TLS 1.3, median of %d "
		 "round%s", o->size, o->rounds, o->rounds > 1 ? "s" : "");
	err = plot_bars_png(path, &p);
out:
	if (err)
		fprintf(stderr, "%s: plot %s: %s\n", o->prog, path, strerror(-err));
	for (size_t r = 0; labels && r < m->nrows; r++)
		free(labels[r]);
	free(labels);
	free(vals);
	return err;
}
