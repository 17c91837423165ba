/* target_main.c - ulpo's NVMe/TCP target as a process for scripted peers: a RAM namespace
 * on 127.0.0.1 and a free port, printed as "port N"; it stops when stdin closes and prints
 * its counters as "name value" lines.
 * usage: target_main [--subnqn NQN] [--ram MIB] [--maxh2cdata BYTES] [--verbose] */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ulpo/nvme.h>

int main(int argc, char **argv)
{
	struct ulpo_nvmet_opts o = { .listen = "127.0.0.1:0", .ram_bytes = 64u << 20 };
	struct ulpo_nvmet_stats st;
	struct ulpo_nvmet *t;
	char buf[256];
	int r;

	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--subnqn") && i + 1 < argc)
			o.subnqn = argv[++i];
		else if (!strcmp(argv[i], "--ram") && i + 1 < argc)
			o.ram_bytes = strtoull(argv[++i], NULL, 0) << 20;
		else if (!strcmp(argv[i], "--maxh2cdata") && i + 1 < argc)
			o.maxh2cdata = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--verbose"))
			o.verbose = 1;
		else {
			fprintf(stderr, "usage: %s [--subnqn NQN] [--ram MIB] [--maxh2cdata N]"
				" [--verbose]\n", argv[0]);
			return 2;
		}
	}
	r = ulpo_nvmet_start(&o, &t);
	if (r) {
		fprintf(stderr, "ulpo_nvmet_start: %s\n", strerror(-r));
		return 1;
	}
	printf("port %d\n", ulpo_nvmet_port(t));
	fflush(stdout);
	while (read(0, buf, sizeof(buf)) > 0)
		;
	ulpo_nvmet_get_stats(t, &st);
	ulpo_nvmet_stop(t);
#define P(f) printf(#f " %llu\n", (unsigned long long)st.f)
	P(connections); P(admin_cmds); P(io_cmds); P(read_bytes); P(write_bytes);
	P(term_reqs_sent); P(ddgst_errors); P(hdgst_errors); P(r2ts); P(h2c_pdus);
	P(c2h_pdus); P(c2h_success); P(kato_expired);
	return 0;
}
