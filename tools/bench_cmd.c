/* bench_cmd.c - `ulpo bench <what>`: the benchmarks in bench/, linked in. `tls` is the
 * TLS matrix of bench/tls_bench.c, writing its chart to ulpo-bench-tls.png by default. */
#include <stdio.h>
#include <string.h>

#include "tls_bench.h"
#include "ulpo.h"

static int bench_usage(FILE *f)
{
	fprintf(f, "usage: ulpo bench tls [options]   (ulpo bench tls --help lists them)\n"
		   "  tls   plaintext TCP vs OpenSSL vs ulpo (inline, async 1 and 2 workers),\n"
		   "        AES-128-GCM and SM4-GCM, 1 and 4 streams, discarding and full-TLS\n"
		   "        receivers; prints a table and writes ulpo-bench-tls.png\n");
	return f == stdout ? 0 : 2;
}

int ulpo_cmd_bench(int argc, char **argv)
{
	if (argc < 2)
		return bench_usage(stderr);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
		return bench_usage(stdout);
	if (!strcmp(argv[1], "tls"))
		return tls_bench_main("ulpo bench tls", argc - 1, argv + 1, "ulpo-bench-tls.png");
	fprintf(stderr, "ulpo bench: unknown benchmark '%s'\n", argv[1]);
	return bench_usage(stderr);
}
