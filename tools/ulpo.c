/* ulpo.c - the `ulpo` command: version, stats and capabilities of running processes, the
 * demo, the benchmarks, running a program on the preload shim, NVMe/TCP target and host. */
#include <stdio.h>
#include <string.h>

#include <ulpo/ulpo.h>

#include "ulpo.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ulpo <command> [options]\n"
		"  version               print the library version\n"
		"  stats [--pid P] [--json]\n"
		"                        counters of processes running ulpo (kernel tls_stat names)\n"
		"  caps [--pid P] [--json] [--device NAME] [--set CAP=on|off,...] [--offload on|off]\n"
		"                        devices' capabilities and the offload policy of a process;\n"
		"                        --set and --offload change what its new connections get\n"
		"  demo [--mib N]        TLS transfer through ulpo with real peers, then counters\n"
		"  bench tls [options]   TCP vs OpenSSL vs ulpo (inline/async), AES-128-GCM and\n"
		"                        SM4-GCM, 1 and 4 streams: table and ulpo-bench-tls.png\n"
		"                        (ulpo bench tls --help for the options)\n"
		"  run [options] -- PROGRAM [ARGS]\n"
		"                        run an unmodified kTLS program on ulpo (LD_PRELOAD)\n"
		"  nvme target|identify|read|write|perf [options]\n"
		"                        NVMe/TCP target and host (ulpo nvme help)\n"
		"  help                  this text\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("ulpo %s\n", ulpo_version());
		return 0;
	}
	if (!strcmp(argv[1], "stats"))
		return ulpo_cmd_stats(argc - 1, argv + 1);
	if (!strcmp(argv[1], "caps"))
		return ulpo_cmd_caps(argc - 1, argv + 1);
	if (!strcmp(argv[1], "demo"))
		return ulpo_cmd_demo(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return ulpo_cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "nvme"))
		return ulpo_cmd_nvme(argc - 1, argv + 1);
	if (!strcmp(argv[1], "bench"))
		return ulpo_cmd_bench(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "ulpo: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
