/* opts.c - the TLS benchmark's command line: lists of ciphers, receivers, stream counts
 * and modes (the matrix), how long each run is, and where the results go. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matrix.h"

/* Sized for about 3-5 minutes on 2 cores: 36 cells x 3 rounds of 1.5 s, plus set-up and
 * the odd repeated run. */
#define DEF_SECONDS 1.5
#define DEF_ROUNDS 3
#define DEF_RETRIES 1
#define QUICK_BYTES (32ull << 20)

static const char *const def_ciphers = "aes-128-gcm,sm4-gcm";
static const char *const def_rxs = "discard,tls";
static const char *const def_streams = "1,4";
static const char *const def_modes = "tcp,openssl,ulpo,ulpo-async1,ulpo-async2";

static void usage(FILE *f, const char *prog, const char *default_plot)
{
	fprintf(f,
"usage: %s [options]\n"
"Loopback TCP, fixed-size writes, a sender and a receiver thread per stream. Runs every\n"
"cell of ciphers x receivers x stream counts x modes, interleaved in rounds, and prints\n"
"the medians: GB/s, ratios, CPU per GB, fairness. TLS 1.3 throughout.\n"
"\n"
"The matrix (comma-separated lists):\n"
"  -c, --cipher LIST    %s (default %s);\n"
"                       openssl cells are n/a for SM4 (OpenSSL has no TLS SM4 suite)\n"
"  -x, --rx LIST        discard: the receiver drops the raw TCP bytes (MSG_TRUNC), so\n"
"                       only the sending side is measured; tls: full TLS both ends,\n"
"                       every block's stamp checked (default %s)\n"
"  -n, --streams LIST   concurrent connections per run, 1..%d (default %s)\n"
"  -m, --modes LIST     in order per round (default %s):\n"
"                       tcp          plaintext TCP\n"
"                       openssl      SSL_write/SSL_read after a handshake (kTLS off)\n"
"                       ulpo         ulpo, engine inline\n"
"                       ulpo-async1  ulpo, engine async with 1 worker\n"
"                       ulpo-async2  ulpo, engine async with 2 workers\n"
"                       ulpo-nopad, ulpo-nopad-async2  ulpo with TLS_RX_EXPECT_NO_PAD\n"
"Each run:\n"
"  -t, --seconds S      each sender sends for S seconds (default %.1f)\n"
"  -b, --bytes N        or N bytes in all, split between the streams; K/M/G suffixes\n"
"  -s, --size N         bytes per write and per read (default 16K: one TLS record)\n"
"  -r, --rounds N       rounds of every cell, medians reported (default %d)\n"
"  -a, --retries N      runs again, up to N times, a run during which other processes\n"
"                       took more than %.0f%% of the CPUs (default %d)\n"
"  -q, --quick          smoke test: 1 round, no retries, %llu MiB per run unless -t/-b\n"
"  -V, --verify-full    compare every byte received, not only the block stamps\n"
"  -R, --read-ahead     let OpenSSL read several records per recv\n"
"Output (the table always goes to stdout):\n"
"  -p, --plot FILE      grouped bar chart of GB/s as PNG (default %s)\n"
"  -P, --no-plot        no chart\n"
"      --csv FILE       one line per cell: medians, CPU, fairness, disturbed runs\n"
"      --json FILE      the same, and the ratios, as JSON\n"
"  -v, --verbose        every run on stdout as it ends\n"
"      --no-progress    no progress bar on stderr\n"
"  -h, --help\n"
"Env: ULPO_AEAD_BACKEND=openssl|gcrypt picks ulpo's crypto library; ULPO_ENGINE and\n"
"ULPO_WORKERS are overridden by each mode's engine (ulpo_engine_set_config before each\n"
"run; the per-socket in-flight bounds stay as they were).\n",
		prog, BENCH_CIPHER_NAMES, def_ciphers, def_rxs, BENCH_MAX_STREAMS, def_streams,
		def_modes, DEF_SECONDS, DEF_ROUNDS, 100 * BENCH_OTHER_WARN, DEF_RETRIES,
		QUICK_BYTES >> 20, default_plot ? default_plot : "none");
}

__attribute__((format(printf, 2, 3))) static int bad(const struct bench_opts *o,
						     const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", o->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (--help lists the options)\n");
	return 2;
}

static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (errno || end == s || *end || !v || *s == '-')
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_int(const char *s, int lo, int hi, int *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

/* One list entry into slot n of the list `what` names; 0 or -EINVAL. */
static int list_item(struct bench_opts *o, char what, const char *t, size_t n)
{
	int v;

	switch (what) {
	case 'c':
		o->ciphers[n] = bench_cipher_get(t);
		return o->ciphers[n] ? 0 : -EINVAL;
	case 'x':
		if (!strcmp(t, "discard"))
			o->rxs[n] = BENCH_RX_DISCARD;
		else if (!strcmp(t, "tls"))
			o->rxs[n] = BENCH_RX_TLS;
		else
			return -EINVAL;
		return 0;
	case 'n':
		if (parse_int(t, 1, BENCH_MAX_STREAMS, &v))
			return -EINVAL;
		o->streams[n] = (unsigned int)v;
		return 0;
	default:
		o->modes[n] = bench_mode_get(t);
		return o->modes[n] ? 0 : -EINVAL;
	}
}

static int parse_list(struct bench_opts *o, char what, const char *arg, size_t *ret_n)
{
	char *list = strdup(arg), *save = NULL;
	size_t n = 0;
	int ret = 0;

	if (!list)
		return bad(o, "out of memory");
	for (char *t = strtok_r(list, ",", &save); t && !ret; t = strtok_r(NULL, ",", &save)) {
		if (n == BENCH_MAX_LIST)
			ret = bad(o, "more than %d entries in '%s'", BENCH_MAX_LIST, arg);
		else if (list_item(o, what, t, n++))
			ret = bad(o, "unknown %s '%s'", what == 'c' ? "cipher" :
				  what == 'x' ? "receiver" : what == 'n' ? "stream count" : "mode", t);
	}
	free(list);
	if (!ret && !n)
		ret = bad(o, "empty list");
	*ret_n = n;
	return ret;
}

enum { OPT_CSV = 256, OPT_JSON, OPT_NO_PROGRESS };

int bench_opts_parse(struct bench_opts *o, int argc, char **argv, const char *default_plot)
{
	static const struct option lo[] = {
		{ "cipher", required_argument, NULL, 'c' },
		{ "rx", required_argument, NULL, 'x' },
		{ "streams", required_argument, NULL, 'n' },
		{ "modes", required_argument, NULL, 'm' },
		{ "seconds", required_argument, NULL, 't' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "size", required_argument, NULL, 's' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "retries", required_argument, NULL, 'a' },
		{ "quick", no_argument, NULL, 'q' },
		{ "verify-full", no_argument, NULL, 'V' },
		{ "read-ahead", no_argument, NULL, 'R' },
		{ "plot", required_argument, NULL, 'p' },
		{ "no-plot", no_argument, NULL, 'P' },
		{ "csv", required_argument, NULL, OPT_CSV },
		{ "json", required_argument, NULL, OPT_JSON },
		{ "verbose", no_argument, NULL, 'v' },
		{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	bool sized = false, rounds = false, retries = false;
	uint64_t size;
	char *end;
	int c, r = -1;

	o->seconds = DEF_SECONDS;
	o->size = 16384;
	o->rounds = DEF_ROUNDS;
	o->retries = DEF_RETRIES;
	o->progress = true;
	o->plot = default_plot;
	if (parse_list(o, 'c', def_ciphers, &o->nciphers) ||
	    parse_list(o, 'x', def_rxs, &o->nrxs) ||
	    parse_list(o, 'n', def_streams, &o->nstreams) ||
	    parse_list(o, 'm', def_modes, &o->nmodes))
		return 2;

	optind = 1;
	while (r < 0 && (c = getopt_long(argc, argv, "c:x:n:m:t:b:s:r:a:qVRp:Pvh", lo,
					  NULL)) != -1) {
		switch (c) {
		case 'c': r = parse_list(o, 'c', optarg, &o->nciphers) ? 2 : -1; break;
		case 'x': r = parse_list(o, 'x', optarg, &o->nrxs) ? 2 : -1; break;
		case 'n': r = parse_list(o, 'n', optarg, &o->nstreams) ? 2 : -1; break;
		case 'm': r = parse_list(o, 'm', optarg, &o->nmodes) ? 2 : -1; break;
		case 't':
			o->seconds = strtod(optarg, &end);
			if (end == optarg || *end || !(o->seconds > 0 && o->seconds < 3600))
				r = bad(o, "bad --seconds '%s'", optarg);
			o->bytes = 0;
			sized = true;
			break;
		case 'b':
			if (parse_size(optarg, &o->bytes))
				r = bad(o, "bad --bytes '%s'", optarg);
			o->seconds = 0;
			sized = true;
			break;
		case 's':
			if (parse_size(optarg, &size) || size < 16 || size > (64u << 20))
				r = bad(o, "--size must be 16 bytes .. 64 MiB");
			o->size = (size_t)size;
			break;
		case 'r':
			if (parse_int(optarg, 1, BENCH_MAX_ROUNDS, &o->rounds))
				r = bad(o, "--rounds must be 1..%d", BENCH_MAX_ROUNDS);
			rounds = true;
			break;
		case 'a':
			if (parse_int(optarg, 0, 100, &o->retries))
				r = bad(o, "--retries must be 0..100");
			retries = true;
			break;
		case 'q': o->quick = true; break;
		case 'V': o->verify_full = true; break;
		case 'R': o->read_ahead = true; break;
		case 'p': o->plot = optarg; break;
		case 'P': o->plot = NULL; break;
		case OPT_CSV: o->csv = optarg; break;
		case OPT_JSON: o->json = optarg; break;
		case 'v': o->verbose = true; break;
		case OPT_NO_PROGRESS: o->progress = false; break;
		case 'h':
			usage(stdout, o->prog, default_plot);
			return 0;
		default:
			return bad(o, "bad usage");
		}
	}
	if (r >= 0)
		return r;
	if (optind != argc)
		return bad(o, "unexpected argument '%s'", argv[optind]);
	/* --quick sets what the other options did not. */
	if (o->quick) {
		if (!sized) {
			o->bytes = QUICK_BYTES;
			o->seconds = 0;
		}
		if (!rounds)
			o->rounds = 1;
		if (!retries)
			o->retries = 0;
	}
	for (size_t i = 0; i < o->nstreams && o->bytes; i++)
		if (o->bytes / o->streams[i] / o->size == 0)
			return bad(o, "--bytes %llu is less than one %zu-byte write per stream",
				   (unsigned long long)o->bytes, o->size);
	return -1;
}
