/* nvme_bench.c - the NVMe/TCP host against ulpo's target on loopback, in one run:
 * 4 KiB random reads at queue depth 1, 32 and 128 and 128 KiB sequential reads, each with
 * DDP on and off and the data digest on and off (IOPS, GB/s, p99), next to plaintext TCP
 * loopback throughput measured in the same run (one stream, 128 KiB writes). The goal
 * line: 128 KiB sequential reads with data digest and DDP against that TCP figure.
 *
 * usage: nvme_bench [--seconds S] [--quick]
 *        nvme_bench --host-only --addr ADDR:PORT [--ddp on|off] [--digest on|off] [--mib N]
 * The second form only reads N MiB sequentially (128 KiB) from a target elsewhere: what
 * bench/nvme_callgrind.sh runs under callgrind to count the host's instructions per byte. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ulpo/ddp.h>
#include <ulpo/nvme.h>

#include "nvme_perf.h"

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- plaintext TCP loopback, one stream ---- */

struct tcp_run {
	int fd;
	double seconds;
	uint64_t bytes;
};

static void *tcp_sender(void *arg)
{
	struct tcp_run *t = arg;
	uint8_t *buf = calloc(1, 128 << 10);
	double end = now_s() + t->seconds;

	while (now_s() < end)
		if (send(t->fd, buf, 128 << 10, MSG_NOSIGNAL) <= 0)
			break;
	shutdown(t->fd, SHUT_WR);
	free(buf);
	return NULL;
}

static double tcp_gbps(double seconds)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), s;
	uint8_t *buf = malloc(128 << 10);
	struct tcp_run t = { .seconds = seconds };
	pthread_t th;
	double t0, t1;
	ssize_t n;

	if (bind(l, (void *)&a, sizeof(a)) || listen(l, 1) || getsockname(l, (void *)&a, &al) ||
	    connect(c, (void *)&a, sizeof(a)) || (s = accept(l, NULL, NULL)) < 0)
		return 0;
	t.fd = s;
	t0 = now_s();
	pthread_create(&th, NULL, tcp_sender, &t);
	while ((n = recv(c, buf, 128 << 10, 0)) > 0)
		t.bytes += (uint64_t)n;
	t1 = now_s();
	pthread_join(th, NULL);
	close(c);
	close(s);
	close(l);
	free(buf);
	return (double)t.bytes / (t1 - t0) / 1e9;
}

/* ---- one cell ---- */

struct cell {
	const char *name;
	enum nvme_perf_rw rw;
	uint32_t bs;
	unsigned int qd;
	bool ddp, digest;
	struct nvme_perf_result r;
	uint64_t placed, copied;
	int err;
};

static int run_cell(const char *addr, struct cell *c, double seconds)
{
	struct ulpo_nvme_opts o = { .addr = addr, .queue_depth = c->qd, .no_ddp = !c->ddp,
				    .hdgst = c->digest, .ddgst = c->digest, .timeout_ms = 30000 };
	struct nvme_perf_opts po = { .rw = c->rw, .bs = c->bs, .qd = c->qd, .seconds = seconds,
				     .nsid = 1, .seed = 42 };
	struct ulpo_nvme_ctrl *ctrl;
	struct ulpo_nvme_stats st;
	int r = ulpo_nvme_connect(&o, &ctrl);

	if (r)
		return c->err = r;
	r = nvme_perf_run(ctrl, &po, &c->r);
	ulpo_nvme_get_stats(ctrl, &st);
	c->placed = st.placed_bytes;
	c->copied = st.copied_bytes;
	ulpo_nvme_disconnect(ctrl);
	if (!r && c->r.errors)
		r = c->r.first_error ? c->r.first_error : -EIO;
	return c->err = r;
}

static int host_only(int argc, char **argv)
{
	struct ulpo_nvme_opts o = { .queue_depth = 8, .timeout_ms = 30000 };
	struct ulpo_nvme_ctrl *c;
	struct ulpo_nvme_stats st;
	size_t mib = 64, chunk = 128 << 10;
	uint8_t *buf;
	int r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--addr") && i + 1 < argc)
			o.addr = argv[++i];
		else if (!strcmp(argv[i], "--ddp") && i + 1 < argc)
			o.no_ddp = !strcmp(argv[++i], "off");
		else if (!strcmp(argv[i], "--digest") && i + 1 < argc)
			o.hdgst = o.ddgst = !strcmp(argv[++i], "on");
		else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = strtoul(argv[++i], NULL, 0);
	}
	if (!o.addr) {
		fprintf(stderr, "nvme_bench --host-only: --addr is required\n");
		return 2;
	}
	r = ulpo_nvme_connect(&o, &c);
	if (r) {
		fprintf(stderr, "connect %s: %s\n", o.addr, strerror(-r));
		return 1;
	}
	buf = aligned_alloc(4096, chunk);
	for (size_t off = 0; off < mib << 20 && !r; off += chunk)
		r = ulpo_nvme_read(c, 1, off / 512, (uint32_t)(chunk / 512), buf);
	ulpo_nvme_get_stats(c, &st);
	ulpo_nvme_disconnect(c);
	printf("read %zu MiB: %s; placed %llu copied %llu\n", mib, ulpo_nvme_status_str(r),
	       (unsigned long long)st.placed_bytes, (unsigned long long)st.copied_bytes);
	free(buf);
	return r ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct ulpo_nvmet_opts to = { .listen = "127.0.0.1:0", .ram_bytes = 256u << 20,
				      .c2h_success = true };
	struct cell cells[16];
	struct ulpo_nvmet *t;
	double seconds = 3, tcp_before, tcp_after, tcp, goal = 0;
	char addr[64];
	size_t n = 0;
	int failed = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--host-only"))
			return host_only(argc, argv);
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--quick"))
			seconds = 0.5;
		else {
			fprintf(stderr, "usage: nvme_bench [--seconds S] [--quick] | --host-only ...\n");
			return 2;
		}
	}
	if (ulpo_nvmet_start(&to, &t)) {
		fprintf(stderr, "nvme_bench: target did not start\n");
		return 1;
	}
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ulpo_nvmet_port(t));
	for (int dg = 0; dg < 2; dg++) {
		for (int ddp = 1; ddp >= 0; ddp--) {
			static const struct { const char *name; enum nvme_perf_rw rw; uint32_t bs;
					      unsigned int qd; } w[] = {
				{ "4k randread qd1", PERF_RANDREAD, 4096, 1 },
				{ "4k randread qd32", PERF_RANDREAD, 4096, 32 },
				{ "4k randread qd128", PERF_RANDREAD, 4096, 128 },
				{ "128k read qd8", PERF_READ, 128 << 10, 8 },
			};

			for (size_t k = 0; k < 4; k++)
				cells[n++] = (struct cell){ .name = w[k].name, .rw = w[k].rw,
							    .bs = w[k].bs, .qd = w[k].qd,
							    .ddp = ddp, .digest = dg };
		}
	}
	/* Fill the namespace once, so reads return written data. */
	{
		struct cell fillc = { .name = "fill", .rw = PERF_WRITE, .bs = 128 << 10, .qd = 8,
				      .ddp = true };

		run_cell(addr, &fillc, seconds < 1 ? 1 : seconds);
	}
	tcp_before = tcp_gbps(seconds);
	for (size_t i = 0; i < n; i++) {
		fprintf(stderr, "\r%zu/%zu %s, DDP %s, data digest %s ...        ", i + 1, n,
			cells[i].name, cells[i].ddp ? "on" : "off", cells[i].digest ? "on" : "off");
		run_cell(addr, &cells[i], seconds);
	}
	fprintf(stderr, "\n");
	tcp_after = tcp_gbps(seconds);
	tcp = (tcp_before + tcp_after) / 2;
	ulpo_nvmet_stop(t);

	printf("%-20s %5s %7s %12s %9s %10s %14s %14s\n", "workload", "DDP", "digest", "IOPS",
	       "GB/s", "p99 us", "placed MB", "copied MB");
	for (size_t i = 0; i < n; i++) {
		struct cell *c = &cells[i];

		if (c->err) {
			printf("%-20s %5s %7s  error: %s\n", c->name, c->ddp ? "on" : "off",
			       c->digest ? "on" : "off", ulpo_nvme_status_str(c->err));
			failed = 1;
			continue;
		}
		printf("%-20s %5s %7s %12.0f %9.3f %10.1f %14.1f %14.1f\n", c->name,
		       c->ddp ? "on" : "off", c->digest ? "on" : "off", c->r.iops, c->r.mbps / 1e3,
		       c->r.p99_us, (double)c->placed / 1e6, (double)c->copied / 1e6);
		if (c->rw == PERF_READ && c->ddp && c->digest)
			goal = c->r.mbps / 1e3;
	}
	printf("plaintext TCP loopback, one stream: %.3f GB/s (before %.3f, after %.3f)\n", tcp,
	       tcp_before, tcp_after);
	printf("128k sequential read, DDP and data digest: %.3f GB/s = %.2fx TCP (goal >= 0.90)\n",
	       goal, tcp > 0 ? goal / tcp : 0);
	return failed;
}
