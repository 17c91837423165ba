/* nvme_rw.c - the ulpo NVMe/TCP host against a target: identify, then write random data
 * and read it back byte-exact, with small writes (in-capsule data) and large ones (R2T,
 * H2CData within maxh2cdata), many commands in flight, reads placed by the DDP device.
 * usage: nvme_rw ADDR NQN MIB [--digests] [--no-ddp] [--qd N] [--queues N] [--nsid N]
 *        [--seed S]
 *        nvme_rw --target MIB [options]: against ulpo's own target, started here
 * Prints what it did and the host's counters; exit 0 only if every byte matched. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ulpo/ddp.h>
#include <ulpo/nvme.h>
#include <ulpo/ulpo.h>

struct io {
	int status;
	int done;
};

static void cb(void *arg, int status)
{
	struct io *io = arg;

	io->status = status;
	io->done = 1;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Run `n` I/Os of the given blocks over the whole area, qd at once on queue q. */
static int run(struct ulpo_nvme_ctrl *c, unsigned int nq, uint32_t nsid, bool write, uint8_t *buf,
	       const uint32_t *blocks, size_t n, uint32_t lba, unsigned int qd)
{
	struct io *ios = calloc(n, sizeof(*ios));
	size_t next = 0, done = 0, *off = calloc(n, sizeof(size_t));
	uint64_t slba = 0;
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		off[i] = (size_t)slba * lba;
		slba += blocks[i];
	}
	while (done < n && !err) {
		for (unsigned int q = 1; q <= nq; q++) {
			while (next < n && ulpo_nvme_inflight(c, q) < qd) {
				struct iovec v = { buf + off[next], (size_t)blocks[next] * lba };
				uint64_t s = off[next] / lba;
				int r = write ? ulpo_nvme_submit_write(c, q, nsid, s, blocks[next], &v, 1,
								       cb, &ios[next])
					      : ulpo_nvme_submit_read(c, q, nsid, s, blocks[next], &v, 1,
								      cb, &ios[next]);

				if (r == -EAGAIN)
					break;
				if (r < 0) {
					fprintf(stderr, "submit: %s\n", strerror(-r));
					err = r;
					break;
				}
				next++;
			}
			int r = ulpo_nvme_poll(c, q, 0);

			if (r < 0) {
				fprintf(stderr, "poll queue %u: %s\n", q, strerror(-r));
				err = r;
			}
		}
		done = 0;
		for (size_t i = 0; i < next; i++) {
			if (ios[i].done && ios[i].status && !err) {
				fprintf(stderr, "%s %zu: %s\n", write ? "write" : "read", i,
					ulpo_nvme_status_str(ios[i].status));
				err = -EIO;
			}
			done += ios[i].done;
		}
		if (next == n && done < n && !err)
			for (unsigned int q = 1; q <= nq; q++)
				ulpo_nvme_poll(c, q, 1);
	}
	free(ios);
	free(off);
	return err;
}

int main(int argc, char **argv)
{
	struct ulpo_nvme_opts o = { .queue_depth = 64, .kato_ms = 5000, .timeout_ms = 60000 };
	unsigned int qd = 32, nsid = 1;
	uint64_t seed = 0x1234567;
	struct ulpo_nvme_ctrl *c;
	struct ulpo_nvme_ns_info ns;
	const struct ulpo_nvme_ctrl_info *ci;
	struct ulpo_nvme_stats st;
	bool ddp_expected;
	struct ulpo_ddp_stats ds;
	size_t mib, total, n = 0, small = 0, large = 0;
	uint32_t *blocks;
	uint8_t *src, *dst;
	int r;

	struct ulpo_nvmet *target = NULL;
	char taddr[64], **nargv = NULL;

	if (argc >= 3 && !strcmp(argv[1], "--target")) {
		struct ulpo_nvmet_opts to = { .listen = "127.0.0.1:0", .ram_bytes = 128u << 20 };

		r = ulpo_nvmet_start(&to, &target);
		if (r) {
			fprintf(stderr, "target: %s\n", strerror(-r));
			return 1;
		}
		snprintf(taddr, sizeof(taddr), "127.0.0.1:%d", ulpo_nvmet_port(target));
		/* The same as "nvme_rw ADDR NQN MIB ..." from here. */
		nargv = calloc((size_t)argc + 2, sizeof(*nargv));
		nargv[0] = argv[0];
		nargv[1] = taddr;
		nargv[2] = (char *)ULPO_NVME_DEFAULT_SUBNQN;
		for (int i = 2; i < argc; i++)
			nargv[i + 1] = argv[i];
		argv = nargv;
		argc++;
	}
	if (argc < 4) {
		fprintf(stderr, "usage: %s ADDR NQN MIB [--digests] [--no-ddp] [--qd N] "
			"[--queues N] [--nsid N] [--seed S]\n", argv[0]);
		return 2;
	}
	o.addr = argv[1];
	o.subnqn = argv[2];
	mib = strtoul(argv[3], NULL, 0);
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--digests"))
			o.hdgst = o.ddgst = true;
		else if (!strcmp(argv[i], "--no-ddp"))
			o.no_ddp = true;
		else if (!strcmp(argv[i], "--qd") && i + 1 < argc)
			qd = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--queues") && i + 1 < argc)
			o.nr_io_queues = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--nsid") && i + 1 < argc)
			nsid = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	o.verbose = 1;
	r = ulpo_nvme_connect(&o, &c);
	if (r) {
		fprintf(stderr, "connect %s %s: %s\n", o.addr, o.subnqn, strerror(-r));
		return 1;
	}
	ci = ulpo_nvme_ctrl_info(c);
	r = ulpo_nvme_ns_info(c, nsid, &ns);
	if (r) {
		fprintf(stderr, "identify namespace %u: %s\n", nsid, ulpo_nvme_status_str(r));
		return 1;
	}
	printf("controller: mn '%s' sn '%s' fr '%s' cntlid %u nn %u ioccsz %u maxh2cdata %u "
	       "mdts %u mqes %u, %u I/O queues; namespace %u: %llu blocks of %u bytes\n",
	       ci->mn, ci->sn, ci->fr, ci->cntlid, ci->nn, ci->ioccsz, ci->maxh2cdata,
	       ci->mdts_bytes, ci->mqes, ulpo_nvme_nr_io_queues(c), nsid,
	       (unsigned long long)ns.nsze, ns.lba_size);
	total = mib << 20;
	if (total > ns.nsze * ns.lba_size)
		total = (size_t)(ns.nsze * ns.lba_size);
	blocks = calloc(total / ns.lba_size + 1, sizeof(*blocks));
	src = malloc(total);
	dst = malloc(total);
	if (!blocks || !src || !dst)
		return 1;
	for (size_t i = 0; i < total; i += 8) {
		uint64_t v = rnd(&seed);

		memcpy(src + i, &v, total - i < 8 ? total - i : 8);
	}
	memset(dst, 0xa5, total);
	/* Sizes: half small enough for in-capsule data, half large (R2T), up to 256 KiB. */
	for (size_t left = total / ns.lba_size; left;) {
		uint32_t cap_blocks = ci->ioccsz / ns.lba_size, b;

		if (rnd(&seed) & 1 && cap_blocks) {
			b = 1 + (uint32_t)(rnd(&seed) % cap_blocks);
			small++;
		} else {
			b = (uint32_t)(rnd(&seed) % ((256u << 10) / ns.lba_size)) + cap_blocks + 1;
			large++;
		}
		if (ci->mdts_bytes && b > ci->mdts_bytes / ns.lba_size)
			b = ci->mdts_bytes / ns.lba_size;
		if (b > left)
			b = (uint32_t)left;
		blocks[n++] = b;
		left -= b;
	}
	r = run(c, ulpo_nvme_nr_io_queues(c), nsid, true, src, blocks, n, ns.lba_size, qd);
	if (!r)
		r = run(c, ulpo_nvme_nr_io_queues(c), nsid, false, dst, blocks, n, ns.lba_size, qd);
	if (!r)
		r = ulpo_nvme_flush(c, nsid);
	ddp_expected = !o.no_ddp && ulpo_offload_get();
	ulpo_nvme_get_stats(c, &st);
	ulpo_ddp_get_stats(ulpo_ddp_dev_sw(), &ds);
	printf("%zu MiB in %zu writes (%zu small, %zu large) and %zu reads, queue depth %u, "
	       "digests %s, DDP %s\n", total >> 20, n, small, large, n, qd,
	       o.hdgst ? "on" : "off",
	       o.no_ddp ? "off" : ulpo_offload_get() ? "on" : "off (offload policy off)");
	printf("host: in-capsule writes %llu, R2T writes %llu, H2CData %llu, C2HData %llu "
	       "(SUCCESS flag %llu); placed %llu bytes, copied %llu; data digests checked by the "
	       "device %llu, by the host %llu, errors %llu; keep alives %llu\n",
	       (unsigned long long)st.incapsule_writes, (unsigned long long)st.r2t_writes,
	       (unsigned long long)st.h2c_pdus, (unsigned long long)st.c2h_pdus,
	       (unsigned long long)st.c2h_success_flag, (unsigned long long)st.placed_bytes,
	       (unsigned long long)st.copied_bytes, (unsigned long long)st.ddgst_offloaded,
	       (unsigned long long)st.ddgst_checked, (unsigned long long)st.ddgst_errors,
	       (unsigned long long)st.keep_alives);
	printf("ddp sw: rx_nvme_tcp_sk_add %llu sk_add_fail %llu setup %llu setup_fail %llu "
	       "teardown %llu packets %llu bytes %llu\n",
	       (unsigned long long)ds.rx_nvme_tcp_sk_add,
	       (unsigned long long)ds.rx_nvme_tcp_sk_add_fail,
	       (unsigned long long)ds.rx_nvme_tcp_setup,
	       (unsigned long long)ds.rx_nvme_tcp_setup_fail,
	       (unsigned long long)ds.rx_nvme_tcp_teardown,
	       (unsigned long long)ds.rx_nvme_tcp_packets, (unsigned long long)ds.rx_nvme_tcp_bytes);
	ulpo_nvme_disconnect(c);
	if (target)
		ulpo_nvmet_stop(target);
	free(nargv);
	if (r) {
		printf("FAIL: %s\n", ulpo_nvme_status_str(r));
	} else if (memcmp(src, dst, total)) {
		size_t i = 0;

		while (src[i] == dst[i])
			i++;
		printf("FAIL: data differs from byte %zu\n", i);
		r = 1;
	} else if (ddp_expected != (st.placed_bytes != 0)) {
		printf("FAIL: placed %llu bytes with DDP %s\n", (unsigned long long)st.placed_bytes,
		       ddp_expected ? "expected" : "off (the offload policy keeps queues on the copy path)");
		r = 1;
	} else if (!small || !large) {
		printf("FAIL: not every path was taken\n");
		r = 1;
	} else {
		printf("PASS: %zu MiB written and read back byte-exact\n", total >> 20);
	}
	free(blocks);
	free(src);
	free(dst);
	return r ? 1 : 0;
}
