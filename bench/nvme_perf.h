/* nvme_perf.h - an NVMe/TCP workload on the ulpo host, as spdk_nvme_perf or fio run one:
 * queue depth per queue, block size, random or sequential, reads or writes, for a time;
 * IOPS, throughput and latency percentiles. Used by `ulpo nvme perf` and bench/nvme_bench. */
#ifndef ULPO_BENCH_NVME_PERF_H
#define ULPO_BENCH_NVME_PERF_H

#include <stdbool.h>
#include <stdint.h>

#include <ulpo/nvme.h>

enum nvme_perf_rw { PERF_RANDREAD, PERF_RANDWRITE, PERF_READ, PERF_WRITE };

struct nvme_perf_opts {
	enum nvme_perf_rw rw;
	uint32_t bs;			/* bytes, a multiple of the block size */
	unsigned int qd;		/* per queue */
	double seconds;
	uint32_t nsid;
	uint64_t seed;
	uint64_t span;			/* bytes of the namespace used, from 0 (0: all) */
	bool progress;			/* a line on stderr every second */
};

struct nvme_perf_result {
	uint64_t ios, bytes, errors;
	int first_error;
	double seconds, iops, mbps;
	double lat_avg_us, p50_us, p99_us, p999_us, max_us;
};

int nvme_perf_parse_rw(const char *s, enum nvme_perf_rw *rw);
const char *nvme_perf_rw_name(enum nvme_perf_rw rw);
/* 0, or -errno if the run could not start; I/O errors are counted in the result. */
int nvme_perf_run(struct ulpo_nvme_ctrl *c, const struct nvme_perf_opts *o,
		  struct nvme_perf_result *res);

#endif
