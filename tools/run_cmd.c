/* run_cmd.c - `ulpo run [options] -- PROGRAM ARGS`: run an unmodified program with
 * libulpo-preload.so, so that its kTLS calls (TCP_ULP "tls", SOL_TLS, send/recv with
 * record-type cmsgs, poll, ...) are carried by ulpo. The options become the environment
 * the library reads (ULPO_ENGINE, ULPO_WORKERS, ULPO_DEVICE), and are checked here so a
 * typo fails loudly instead of being ignored by the library. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

#include "ulpo.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ulpo run [--engine inline|async] [--workers N] [--device auto|kernel|sw]\n"
		"                [--preload PATH] -- PROGRAM [ARGS...]\n"
		"  --engine    where records are sealed and opened: on the calling thread\n"
		"              (inline, default) or on worker threads (async)\n"
		"  --workers   worker threads for async (1..%d; default: online cores)\n"
		"  --device    auto: the kernel's kTLS where TCP_ULP \"tls\" loads, else ulpo\n"
		"              (default); kernel: only the kernel's; sw: always ulpo\n"
		"  --preload   the shim to use (default: the build tree's, else the installed)\n",
		ULPO_ENGINE_MAX_WORKERS);
}

/* The shim next to this executable in the build tree, else the installed one. */
static const char *find_preload(void)
{
	if (access(ULPO_PRELOAD_BUILD_PATH, R_OK) == 0) {
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		/* Only a ulpo run from its build tree uses the build tree's shim. */
		if (n > 0) {
			self[n] = 0;
			if (!strncmp(self, ULPO_BUILD_ROOT "/", strlen(ULPO_BUILD_ROOT) + 1))
				return ULPO_PRELOAD_BUILD_PATH;
		}
	}
	return ULPO_PRELOAD_INSTALL_PATH;
}

int ulpo_cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "engine", required_argument, NULL, 'e' },
		{ "workers", required_argument, NULL, 'w' },
		{ "device", required_argument, NULL, 'd' },
		{ "preload", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *preload = NULL, *old;
	char *val;
	int c;

	while ((c = getopt_long(argc, argv, "+e:w:d:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			if (strcmp(optarg, "inline") && strcmp(optarg, "async")) {
				fprintf(stderr, "ulpo run: --engine must be inline or async\n");
				return 2;
			}
			setenv("ULPO_ENGINE", optarg, 1);
			break;
		case 'w': {
			char *end;
			long n = strtol(optarg, &end, 10);

			if (*end || n < 1 || n > ULPO_ENGINE_MAX_WORKERS) {
				fprintf(stderr, "ulpo run: --workers must be 1..%d\n",
					ULPO_ENGINE_MAX_WORKERS);
				return 2;
			}
			setenv("ULPO_WORKERS", optarg, 1);
			break;
		}
		case 'd':
			if (strcmp(optarg, "auto") && strcmp(optarg, "kernel") && strcmp(optarg, "sw")) {
				fprintf(stderr, "ulpo run: --device must be auto, kernel or sw\n");
				return 2;
			}
			setenv("ULPO_DEVICE", optarg, 1);
			break;
		case 'p':
			preload = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (!preload)
		preload = find_preload();
	if (access(preload, R_OK)) {
		fprintf(stderr, "ulpo run: %s: %s\n", preload, strerror(errno));
		return 127;
	}
	old = getenv("LD_PRELOAD");
	if (old && *old) {
		val = malloc(strlen(preload) + strlen(old) + 2);
		if (!val) {
			perror("ulpo run");
			return 1;
		}
		sprintf(val, "%s:%s", preload, old);
	} else {
		val = strdup(preload);
	}
	if (!val || setenv("LD_PRELOAD", val, 1)) {
		perror("ulpo run");
		return 1;
	}
	execvp(argv[optind], argv + optind);
	fprintf(stderr, "ulpo run: %s: %s\n", argv[optind], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
