/* nvme_perf.c - the NVMe/TCP workload (nvme_perf.h). Every queue keeps qd commands in
 * flight; a completion records its latency and submits the next. Queues are polled
 * without waiting while any of them completes something, else the first busy one waits
 * (a host that spun would take the CPU a loopback target needs). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nvme_perf.h"

#define LAT_MAX (16u << 20)

struct slot {
	struct perf *p;
	unsigned int q;
	uint8_t *buf;
	uint64_t t0;
};

struct perf {
	struct ulpo_nvme_ctrl *c;
	const struct nvme_perf_opts *o;
	uint32_t lba;
	uint64_t nblocks_span, next_seq, rnd, end_ns;
	uint64_t ios, bytes, errors;
	int first_error;
	uint64_t *lat;
	size_t nlat;
	bool stop;
};

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int nvme_perf_parse_rw(const char *s, enum nvme_perf_rw *rw)
{
	static const char *names[] = { "randread", "randwrite", "read", "write" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i])) {
			*rw = (enum nvme_perf_rw)i;
			return 0;
		}
	return -EINVAL;
}

const char *nvme_perf_rw_name(enum nvme_perf_rw rw)
{
	static const char *names[] = { "randread", "randwrite", "read", "write" };

	return names[rw];
}

static int submit(struct slot *s);

static void done(void *arg, int status)
{
	struct slot *s = arg;
	struct perf *p = s->p;
	uint64_t t = now_ns();

	if (status) {
		p->errors++;
		if (!p->first_error)
			p->first_error = status;
	} else {
		p->ios++;
		p->bytes += p->o->bs;
	}
	if (p->nlat < LAT_MAX)
		p->lat[p->nlat++] = t - s->t0;
	if (!p->stop && t < p->end_ns)
		submit(s);
}

static int submit(struct slot *s)
{
	struct perf *p = s->p;
	uint32_t nlb = p->o->bs / p->lba;
	uint64_t units = p->nblocks_span / nlb, slba;
	struct iovec v = { s->buf, p->o->bs };
	int r;

	if (p->o->rw == PERF_RANDREAD || p->o->rw == PERF_RANDWRITE)
		slba = (xorshift(&p->rnd) % units) * nlb;
	else
		slba = (p->next_seq++ % units) * nlb;
	s->t0 = now_ns();
	if (p->o->rw == PERF_RANDREAD || p->o->rw == PERF_READ)
		r = ulpo_nvme_submit_read(p->c, s->q, p->o->nsid, slba, nlb, &v, 1, done, s);
	else
		r = ulpo_nvme_submit_write(p->c, s->q, p->o->nsid, slba, nlb, &v, 1, done, s);
	if (r < 0 && !p->first_error)
		p->first_error = r;
	if (r < 0)
		p->stop = true;
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int nvme_perf_run(struct ulpo_nvme_ctrl *c, const struct nvme_perf_opts *o,
		  struct nvme_perf_result *res)
{
	unsigned int nq = ulpo_nvme_nr_io_queues(c), nslots = nq * o->qd;
	struct ulpo_nvme_ns_info ns;
	struct perf p = { .c = c, .o = o, .rnd = o->seed ? o->seed : 0x9e3779b97f4a7c15ull };
	struct slot *slots;
	uint8_t *bufs;
	uint64_t t0, last_print, last_ios = 0, last_bytes = 0;
	double sum = 0;
	int r;

	memset(res, 0, sizeof(*res));
	r = ulpo_nvme_ns_info(c, o->nsid, &ns);
	if (r)
		return r < 0 ? r : -ENODEV;
	if (!o->bs || o->bs % ns.lba_size || !o->qd || !nq)
		return -EINVAL;
	p.lba = ns.lba_size;
	p.nblocks_span = o->span && o->span / ns.lba_size < ns.nsze ? o->span / ns.lba_size : ns.nsze;
	if (p.nblocks_span < o->bs / ns.lba_size)
		return -EINVAL;
	slots = calloc(nslots, sizeof(*slots));
	bufs = aligned_alloc(4096, ((size_t)nslots * o->bs + 4095) / 4096 * 4096);
	p.lat = malloc(LAT_MAX * sizeof(*p.lat));
	if (!slots || !bufs || !p.lat) {
		free(slots);
		free(bufs);
		free(p.lat);
		return -ENOMEM;
	}
	for (size_t i = 0; i < (size_t)nslots * o->bs; i++)
		bufs[i] = (uint8_t)(i * 131 + 7);
	t0 = now_ns();
	last_print = t0;
	p.end_ns = t0 + (uint64_t)(o->seconds * 1e9);
	for (unsigned int i = 0; i < nslots; i++) {
		slots[i] = (struct slot){ &p, i / o->qd + 1, bufs + (size_t)i * o->bs, 0 };
		if (submit(&slots[i]) < 0)
			break;
	}
	for (;;) {
		unsigned int busy = 0, first_busy = 0;
		int got = 0;
		uint64_t t;

		for (unsigned int q = 1; q <= nq; q++) {
			if (!ulpo_nvme_inflight(c, q))
				continue;
			busy++;
			if (!first_busy)
				first_busy = q;
			r = ulpo_nvme_poll(c, q, 0);
			if (r < 0) {
				if (!p.first_error)
					p.first_error = r;
				p.stop = true;
			} else {
				got += r;
			}
		}
		if (!busy)
			break;
		if (!got)
			ulpo_nvme_poll(c, first_busy, 1);
		t = now_ns();
		if (o->progress && t - last_print >= 1000000000u) {
			double dt = (double)(t - last_print) / 1e9;

			fprintf(stderr, "\r  %5.1f s  %10.0f IOPS  %9.1f MB/s  errors %llu   ",
				(double)(t - t0) / 1e9, (double)(p.ios - last_ios) / dt,
				(double)(p.bytes - last_bytes) / dt / 1e6,
				(unsigned long long)p.errors);
			last_print = t;
			last_ios = p.ios;
			last_bytes = p.bytes;
		}
	}
	if (o->progress)
		fprintf(stderr, "\n");
	res->seconds = (double)(now_ns() - t0) / 1e9;
	res->ios = p.ios;
	res->bytes = p.bytes;
	res->errors = p.errors;
	res->first_error = p.first_error;
	res->iops = (double)p.ios / res->seconds;
	res->mbps = (double)p.bytes / res->seconds / 1e6;
	if (p.nlat) {
		qsort(p.lat, p.nlat, sizeof(*p.lat), cmp_u64);
		for (size_t i = 0; i < p.nlat; i++)
			sum += (double)p.lat[i];
		res->lat_avg_us = sum / (double)p.nlat / 1e3;
		res->p50_us = (double)p.lat[p.nlat / 2] / 1e3;
		res->p99_us = (double)p.lat[(size_t)((double)p.nlat * 0.99)] / 1e3;
		res->p999_us = (double)p.lat[(size_t)((double)p.nlat * 0.999)] / 1e3;
		res->max_us = (double)p.lat[p.nlat - 1] / 1e3;
	}
	free(slots);
	free(bufs);
	free(p.lat);
	return 0;
}
