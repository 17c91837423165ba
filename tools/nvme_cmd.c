/* nvme_cmd.c - `ulpo nvme`: the NVMe/TCP target, and host commands against any target
 * (identify, read, write, perf). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ulpo/ddp.h>
#include <ulpo/nvme.h>

#include "nvme_perf.h"
#include "ulpo.h"

static int nvme_usage(FILE *f)
{
	fprintf(f,
		"usage: ulpo nvme <command> [options]\n"
		"  target [--ram SIZE | --file PATH] [--listen ADDR:PORT] [--nqn NQN]\n"
		"         [--lba 512|4096] [--no-c2h-success] [-v]\n"
		"                        serve a namespace over NVMe/TCP until interrupted\n"
		"                        (default: --ram 1G --listen 127.0.0.1:4420)\n"
		"  identify --addr ADDR:PORT [--nqn NQN] [--digests]\n"
		"  read --addr ADDR:PORT --lba N --blocks N [--out FILE] [--nsid N] [--digests]\n"
		"  write --addr ADDR:PORT --lba N --in FILE [--nsid N] [--digests]\n"
		"  perf --addr ADDR:PORT [--rw randread|randwrite|read|write] [--bs SIZE] [--qd N]\n"
		"       [--queues N] [--time SECONDS] [--digests] [--no-ddp] [--nsid N]\n"
		"                        IOPS, MB/s, latency p50/p99/p99.9 and the DDP counters\n"
		"Sizes take K, M, G suffixes (powers of 1024). --nqn defaults to %s.\n",
		ULPO_NVME_DEFAULT_SUBNQN);
	return f == stdout ? 0 : 2;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || end == s)
		return -EINVAL;
	*out = v;
	return 0;
}

/* ---- target ---- */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int cmd_target(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ram", required_argument, NULL, 'r' }, { "file", required_argument, NULL, 'f' },
		{ "listen", required_argument, NULL, 'l' }, { "nqn", required_argument, NULL, 'n' },
		{ "lba", required_argument, NULL, 'b' }, { "c2h-success", no_argument, NULL, 's' },
		{ "no-c2h-success", no_argument, NULL, 'S' },
		{ "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	/* Reads end with the C2HData SUCCESS flag for hosts that turned SQ flow control off
	 * (one PDU fewer per read), unless --no-c2h-success. */
	struct ulpo_nvmet_opts o = { .listen = "127.0.0.1:4420", .ram_bytes = 1ull << 30,
				     .c2h_success = true };
	struct ulpo_nvmet_stats st;
	struct ulpo_nvmet *t;
	uint64_t v;
	int c, r;

	while ((c = getopt_long(argc, argv, "v", lo, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (parse_size(optarg, &o.ram_bytes) || !o.ram_bytes) {
				fprintf(stderr, "ulpo nvme target: bad --ram '%s'\n", optarg);
				return 2;
			}
			break;
		case 'f': o.file = optarg; o.ram_bytes = 0; break;
		case 'l': o.listen = optarg; break;
		case 'n': o.subnqn = optarg; break;
		case 'b':
			if (parse_size(optarg, &v) || (v != 512 && v != 4096)) {
				fprintf(stderr, "ulpo nvme target: --lba is 512 or 4096\n");
				return 2;
			}
			o.lba_size = (uint32_t)v;
			break;
		case 's': o.c2h_success = true; break;
		case 'S': o.c2h_success = false; break;
		case 'v': o.verbose++; break;
		case 'h': return nvme_usage(stdout);
		default: return nvme_usage(stderr);
		}
	}
	r = ulpo_nvmet_start(&o, &t);
	if (r) {
		fprintf(stderr, "ulpo nvme target: %s: %s\n", o.listen, strerror(-r));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	printf("ulpo nvme target: %s on port %d, subsystem %s, namespace 1: %s\n", o.listen,
	       ulpo_nvmet_port(t), o.subnqn ? o.subnqn : ULPO_NVME_DEFAULT_SUBNQN,
	       o.file ? o.file : "RAM");
	fflush(stdout);
	while (!stop)
		pause();
	ulpo_nvmet_get_stats(t, &st);
	ulpo_nvmet_stop(t);
	printf("connections %llu, admin commands %llu, I/O commands %llu, read %llu bytes, "
	       "written %llu bytes, TermReqs sent %llu\n",
	       (unsigned long long)st.connections, (unsigned long long)st.admin_cmds,
	       (unsigned long long)st.io_cmds, (unsigned long long)st.read_bytes,
	       (unsigned long long)st.write_bytes, (unsigned long long)st.term_reqs_sent);
	return 0;
}

/* ---- host commands ---- */

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

struct host_args {
	struct ulpo_nvme_opts o;
	uint32_t nsid;
	uint64_t lba, blocks;
	const char *in, *out;
	struct nvme_perf_opts perf;
	bool json;
};

static int parse_host(const char *cmd, int argc, char **argv, struct host_args *a)
{
	static const struct option lo[] = {
		{ "addr", required_argument, NULL, 'a' }, { "nqn", required_argument, NULL, 'n' },
		{ "digests", no_argument, NULL, 'd' }, { "no-ddp", no_argument, NULL, 'D' },
		{ "nsid", required_argument, NULL, 'N' }, { "lba", required_argument, NULL, 'L' },
		{ "blocks", required_argument, NULL, 'B' }, { "in", required_argument, NULL, 'i' },
		{ "out", required_argument, NULL, 'o' }, { "rw", required_argument, NULL, 'w' },
		{ "bs", required_argument, NULL, 's' }, { "qd", required_argument, NULL, 'q' },
		{ "queues", required_argument, NULL, 'Q' }, { "time", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	uint64_t v;
	int c;

	a->o.kato_ms = 10000;
	a->nsid = 1;
	a->perf = (struct nvme_perf_opts){ .rw = PERF_RANDREAD, .bs = 4096, .qd = 32,
					   .seconds = 10, .progress = true };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'a': a->o.addr = optarg; break;
		case 'n': a->o.subnqn = optarg; break;
		case 'd': a->o.hdgst = a->o.ddgst = true; break;
		case 'D': a->o.no_ddp = true; break;
		case 'N': a->nsid = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'L': a->lba = strtoull(optarg, NULL, 0); break;
		case 'B': a->blocks = strtoull(optarg, NULL, 0); break;
		case 'i': a->in = optarg; break;
		case 'o': a->out = optarg; break;
		case 'w':
			if (nvme_perf_parse_rw(optarg, &a->perf.rw)) {
				fprintf(stderr, "ulpo nvme %s: --rw randread|randwrite|read|write\n", cmd);
				return 2;
			}
			break;
		case 's':
			if (parse_size(optarg, &v) || !v || v > (16u << 20)) {
				fprintf(stderr, "ulpo nvme %s: bad --bs '%s'\n", cmd, optarg);
				return 2;
			}
			a->perf.bs = (uint32_t)v;
			break;
		case 'q': a->perf.qd = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'Q': a->o.nr_io_queues = (unsigned)strtoul(optarg, NULL, 0); break;
		case 't': a->perf.seconds = strtod(optarg, NULL); break;
		case 'j': a->json = true; break;
		case 'h': return nvme_usage(stdout) + 1;
		default: return nvme_usage(stderr);
		}
	}
	if (!a->o.addr) {
		fprintf(stderr, "ulpo nvme %s: --addr ADDR:PORT is required\n", cmd);
		return 2;
	}
	if (!a->nsid || !a->perf.qd || a->perf.seconds <= 0) {
		fprintf(stderr, "ulpo nvme %s: --nsid, --qd and --time must be positive\n", cmd);
		return 2;
	}
	a->o.queue_depth = a->perf.qd;
	return 0;
}

static int connect_or_say(const char *cmd, struct host_args *a, struct ulpo_nvme_ctrl **c)
{
	int r = ulpo_nvme_connect(&a->o, c);

	if (r)
		fprintf(stderr, "ulpo nvme %s: connect to %s (%s): %s\n", cmd, a->o.addr,
			a->o.subnqn ? a->o.subnqn : ULPO_NVME_DEFAULT_SUBNQN, strerror(-r));
	return r;
}

static int cmd_identify(struct host_args *a)
{
	struct ulpo_nvme_ctrl *c;
	const struct ulpo_nvme_ctrl_info *i;

	if (connect_or_say("identify", a, &c))
		return 1;
	i = ulpo_nvme_ctrl_info(c);
	printf("controller %u: model '%s', serial '%s', firmware '%s', NVMe %u.%u\n", i->cntlid,
	       i->mn, i->sn, i->fr, i->ver >> 16, (i->ver >> 8) & 0xff);
	printf("  subsystem %s\n  namespaces %u, queue entries %u, in-capsule data %u bytes, "
	       "maxh2cdata %u, max transfer %s%u\n", i->subnqn, i->nn, i->mqes, i->ioccsz,
	       i->maxh2cdata, i->mdts_bytes ? "" : "unlimited ", i->mdts_bytes);
	for (uint32_t n = 1; n <= i->nn && n <= 16; n++) {
		struct ulpo_nvme_ns_info ns;

		if (ulpo_nvme_ns_info(c, n, &ns) == 0)
			printf("  namespace %u: %llu blocks of %u bytes (%.1f MiB)\n", n,
			       (unsigned long long)ns.nsze, ns.lba_size,
			       (double)ns.nsze * ns.lba_size / 1048576.0);
	}
	ulpo_nvme_disconnect(c);
	return 0;
}

static int cmd_rw(struct host_args *a, bool write)
{
	struct ulpo_nvme_ctrl *c;
	struct ulpo_nvme_ns_info ns;
	uint8_t *buf = NULL;
	size_t len = 0;
	int r, fd = -1;

	if (write && !a->in) {
		fprintf(stderr, "ulpo nvme write: --in FILE is required\n");
		return 2;
	}
	if (!write && !a->blocks) {
		fprintf(stderr, "ulpo nvme read: --blocks N is required\n");
		return 2;
	}
	if (connect_or_say(write ? "write" : "read", a, &c))
		return 1;
	r = ulpo_nvme_ns_info(c, a->nsid, &ns);
	if (r) {
		fprintf(stderr, "ulpo nvme: namespace %u: %s\n", a->nsid, ulpo_nvme_status_str(r));
		goto out;
	}
	if (write) {
		FILE *f = fopen(a->in, "rb");
		long sz;

		if (!f || fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0) {
			fprintf(stderr, "ulpo nvme write: %s: %s\n", a->in, strerror(errno));
			r = -errno;
			if (f)
				fclose(f);
			goto out;
		}
		rewind(f);
		a->blocks = ((uint64_t)sz + ns.lba_size - 1) / ns.lba_size;
		len = a->blocks * ns.lba_size;
		buf = calloc(1, len ? len : 1);
		if (!buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
			fclose(f);
			r = -EIO;
			goto out;
		}
		fclose(f);
	} else {
		len = a->blocks * ns.lba_size;
		buf = malloc(len);
		if (!buf) {
			r = -ENOMEM;
			goto out;
		}
	}
	/* In pieces of at most 256 blocks (and the controller's limit). */
	for (uint64_t done = 0; done < a->blocks && !r;) {
		uint64_t n = a->blocks - done < 256 ? a->blocks - done : 256;

		if (ulpo_nvme_ctrl_info(c)->mdts_bytes &&
		    n * ns.lba_size > ulpo_nvme_ctrl_info(c)->mdts_bytes)
			n = ulpo_nvme_ctrl_info(c)->mdts_bytes / ns.lba_size;
		r = write ? ulpo_nvme_write(c, a->nsid, a->lba + done, (uint32_t)n,
					    buf + done * ns.lba_size)
			  : ulpo_nvme_read(c, a->nsid, a->lba + done, (uint32_t)n,
					   buf + done * ns.lba_size);
		done += n;
	}
	if (r) {
		fprintf(stderr, "ulpo nvme %s: %s\n", write ? "write" : "read", ulpo_nvme_status_str(r));
		goto out;
	}
	if (write) {
		fprintf(stderr, "wrote %zu bytes at block %llu\n", len, (unsigned long long)a->lba);
	} else {
		fd = a->out ? open(a->out, O_WRONLY | O_CREAT | O_TRUNC, 0644) : 1;
		if (fd < 0 || write_all(fd, buf, len) < 0) {
			fprintf(stderr, "ulpo nvme read: %s: %s\n", a->out ? a->out : "stdout",
				strerror(errno));
			r = -errno;
		}
		if (a->out && fd >= 0)
			close(fd);
	}
out:
	free(buf);
	ulpo_nvme_disconnect(c);
	return r ? 1 : 0;
}

static int cmd_perf(struct host_args *a)
{
	struct ulpo_nvme_ctrl *c;
	struct nvme_perf_result res;
	struct ulpo_nvme_stats st;
	struct ulpo_ddp_stats ds;
	int r;

	a->perf.nsid = a->nsid;
	if (connect_or_say("perf", a, &c))
		return 1;
	fprintf(stderr, "%s, %u bytes, queue depth %u x %u queues, %.0f s, digests %s, DDP %s\n",
		nvme_perf_rw_name(a->perf.rw), a->perf.bs, a->perf.qd, ulpo_nvme_nr_io_queues(c),
		a->perf.seconds, a->o.ddgst ? "on" : "off", a->o.no_ddp ? "off" : "on");
	a->perf.progress = !a->json;
	r = nvme_perf_run(c, &a->perf, &res);
	ulpo_nvme_get_stats(c, &st);
	ulpo_ddp_get_stats(ulpo_ddp_dev_sw(), &ds);
	ulpo_nvme_disconnect(c);
	if (r) {
		fprintf(stderr, "ulpo nvme perf: %s\n", strerror(-r));
		return 1;
	}
	if (a->json) {
		printf("{\"rw\":\"%s\",\"bs\":%u,\"qd\":%u,\"seconds\":%.3f,\"ios\":%llu,"
		       "\"iops\":%.1f,\"mbps\":%.2f,\"lat_avg_us\":%.2f,\"p50_us\":%.2f,"
		       "\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,\"errors\":%llu,"
		       "\"placed_bytes\":%llu,\"copied_bytes\":%llu,\"rx_nvme_tcp_setup\":%llu,"
		       "\"rx_nvme_tcp_setup_fail\":%llu,\"rx_nvme_tcp_packets\":%llu,"
		       "\"rx_nvme_tcp_bytes\":%llu}\n",
		       nvme_perf_rw_name(a->perf.rw), a->perf.bs, a->perf.qd, res.seconds,
		       (unsigned long long)res.ios, res.iops, res.mbps, res.lat_avg_us, res.p50_us,
		       res.p99_us, res.p999_us, res.max_us, (unsigned long long)res.errors,
		       (unsigned long long)st.placed_bytes, (unsigned long long)st.copied_bytes,
		       (unsigned long long)ds.rx_nvme_tcp_setup,
		       (unsigned long long)ds.rx_nvme_tcp_setup_fail,
		       (unsigned long long)ds.rx_nvme_tcp_packets,
		       (unsigned long long)ds.rx_nvme_tcp_bytes);
	} else {
		printf("%-10s %8s %6s %12s %10s %10s %10s %10s %10s\n", "rw", "bs", "qd", "IOPS",
		       "MB/s", "avg us", "p50 us", "p99 us", "p99.9 us");
		printf("%-10s %8u %6u %12.0f %10.1f %10.1f %10.1f %10.1f %10.1f\n",
		       nvme_perf_rw_name(a->perf.rw), a->perf.bs, a->perf.qd, res.iops, res.mbps,
		       res.lat_avg_us, res.p50_us, res.p99_us, res.p999_us);
		printf("errors %llu; read data placed %llu bytes, copied %llu; DDP: "
		       "rx_nvme_tcp_setup %llu setup_fail %llu teardown %llu packets %llu bytes %llu\n",
		       (unsigned long long)res.errors, (unsigned long long)st.placed_bytes,
		       (unsigned long long)st.copied_bytes, (unsigned long long)ds.rx_nvme_tcp_setup,
		       (unsigned long long)ds.rx_nvme_tcp_setup_fail,
		       (unsigned long long)ds.rx_nvme_tcp_teardown,
		       (unsigned long long)ds.rx_nvme_tcp_packets,
		       (unsigned long long)ds.rx_nvme_tcp_bytes);
	}
	if (res.errors)
		fprintf(stderr, "ulpo nvme perf: %llu errors, first: %s\n",
			(unsigned long long)res.errors, ulpo_nvme_status_str(res.first_error));
	return res.errors ? 1 : 0;
}

int ulpo_cmd_nvme(int argc, char **argv)
{
	struct host_args a;
	const char *cmd;
	int r;

	if (argc < 2)
		return nvme_usage(stderr);
	cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help"))
		return nvme_usage(stdout);
	if (!strcmp(cmd, "target"))
		return cmd_target(argc - 1, argv + 1);
	if (strcmp(cmd, "identify") && strcmp(cmd, "read") && strcmp(cmd, "write") &&
	    strcmp(cmd, "perf")) {
		fprintf(stderr, "ulpo nvme: unknown command '%s'\n", cmd);
		return nvme_usage(stderr);
	}
	memset(&a, 0, sizeof(a));
	r = parse_host(cmd, argc - 1, argv + 1, &a);
	if (r)
		return r == 1 ? 0 : r;
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(cmd, "identify"))
		return cmd_identify(&a);
	if (!strcmp(cmd, "perf"))
		return cmd_perf(&a);
	return cmd_rw(&a, !strcmp(cmd, "write"));
}
