/* test_ddp.c - direct data placement proved, not assumed, and the host's fault paths,
 * against ulpo's target on loopback:
 * - placed: reads with DDP leave the host's staging buffer (poisoned beforehand)
 *   untouched, the data is exact, and the counters say every read byte was placed;
 * - copy path: without DDP the same data comes through the staging buffer;
 * - refusal: a device whose setup fails for every other command gives the same data
 *   (those commands copied, counted as setup_fail);
 * - ids: a device that finishes teardowns late, on another thread, never sees a command
 *   id set up again before its teardown finished;
 * - faults, through a proxy that corrupts the target's PDUs: a bad data digest fails that
 *   read with Data Transfer Error and the queue carries on; a bad header digest ends the
 *   queue with a TermReq and an error the caller sees. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ulpo/ddp.h>
#include <ulpo/nvme.h>

#include "ddp/ddp.h"
#include "nvme/host.h"
#include "nvme/wire.h"

#define MIB (1u << 20)
#define AREA (8 * MIB)
#define POISON 0xdb

static int passed, failed;
static char addr[64];

#define CHECK(c, ...) do {						\
	if (c) { passed++; } else {					\
		failed++;						\
		fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #c);	\
		fprintf(stderr, __VA_ARGS__);				\
		fprintf(stderr, "\n");					\
	}								\
} while (0)

static struct ulpo_nvme_ctrl *connect_host(const char *a, bool digests, bool no_ddp)
{
	struct ulpo_nvme_opts o = { .addr = a, .hdgst = digests, .ddgst = digests,
				    .no_ddp = no_ddp, .queue_depth = 32, .timeout_ms = 10000 };
	struct ulpo_nvme_ctrl *c = NULL;
	int r = ulpo_nvme_connect(&o, &c);

	CHECK(r == 0, "connect %s: %s", a, strerror(-r));
	return r ? NULL : c;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}

struct io {
	int status, done;
};

static void cb(void *arg, int status)
{
	struct io *io = arg;

	io->status = status;
	io->done = 1;
}

/* Read `area` bytes in `bs` pieces, qd at once; returns the first failing status. */
static int read_area(struct ulpo_nvme_ctrl *c, uint8_t *dst, size_t area, size_t bs, unsigned qd)
{
	size_t n = area / bs, next = 0, done = 0;
	struct io *ios = calloc(n, sizeof(*ios));
	int err = 0;

	while (done < n) {
		while (next < n && ulpo_nvme_inflight(c, 1) < qd) {
			struct iovec v = { dst + next * bs, bs };
			int r = ulpo_nvme_submit_read(c, 1, 1, next * bs / 512, (uint32_t)(bs / 512),
						      &v, 1, cb, &ios[next]);

			if (r == -EAGAIN)
				break;
			if (r) {
				free(ios);
				return r;
			}
			next++;
		}
		if (ulpo_nvme_poll(c, 1, 100) < 0 && !err)
			err = -EIO;
		done = 0;
		for (size_t i = 0; i < next; i++) {
			done += ios[i].done;
			if (ios[i].done && ios[i].status && !err)
				err = ios[i].status;
		}
		if (err)
			break;
	}
	free(ios);
	return err;
}

static void t_placed(uint8_t *src, uint8_t *dst)
{
	struct ulpo_nvme_ctrl *c = connect_host(addr, true, false);
	struct ulpo_nvme_stats st0, st;
	struct host_queue *q;
	int r;

	if (!c)
		return;
	for (size_t off = 0; off < AREA; off += 256 * 512) {
		r = ulpo_nvme_write(c, 1, off / 512, 256, src + off);
		CHECK(r == 0, "write: %s", ulpo_nvme_status_str(r));
	}
	/* The copy path's buffer, poisoned: a read that went through it leaves data there. */
	q = &c->io[0];
	q->staging = malloc(128 * 1024);
	q->staging_len = 128 * 1024;
	memset(q->staging, POISON, q->staging_len);
	memset(dst, 0, AREA);
	ulpo_nvme_get_stats(c, &st0);
	r = read_area(c, dst, AREA, 64 * 1024, 16);
	ulpo_nvme_get_stats(c, &st);
	CHECK(r == 0, "read: %s", ulpo_nvme_status_str(r));
	CHECK(!memcmp(src, dst, AREA), "placed data differs");
	CHECK(st.placed_bytes - st0.placed_bytes == AREA, "placed %llu of %u",
	      (unsigned long long)(st.placed_bytes - st0.placed_bytes), AREA);
	CHECK(st.copied_bytes == st0.copied_bytes, "copied %llu bytes",
	      (unsigned long long)(st.copied_bytes - st0.copied_bytes));
	CHECK(st.ddgst_offloaded - st0.ddgst_offloaded >= AREA / (64 * 1024),
	      "digests checked by the device: %llu",
	      (unsigned long long)(st.ddgst_offloaded - st0.ddgst_offloaded));
	{
		size_t k = 0;

		while (k < q->staging_len && q->staging[k] == POISON)
			k++;
		CHECK(k == q->staging_len, "the staging buffer was written at byte %zu", k);
	}
	ulpo_nvme_disconnect(c);
	printf("placed: %u MiB read, all placed, staging buffer untouched\n", AREA / MIB);
}

static void t_copied(uint8_t *src, uint8_t *dst)
{
	struct ulpo_nvme_ctrl *c = connect_host(addr, true, true);
	struct ulpo_nvme_stats st;
	int r;

	if (!c)
		return;
	memset(dst, 0, AREA);
	r = read_area(c, dst, AREA, 64 * 1024, 16);
	ulpo_nvme_get_stats(c, &st);
	CHECK(r == 0, "read: %s", ulpo_nvme_status_str(r));
	CHECK(!memcmp(src, dst, AREA), "copied data differs");
	CHECK(st.placed_bytes == 0 && st.copied_bytes >= AREA, "placed %llu copied %llu",
	      (unsigned long long)st.placed_bytes, (unsigned long long)st.copied_bytes);
	ulpo_nvme_disconnect(c);
	printf("copy path: %u MiB read through the staging buffer, same data\n", AREA / MIB);
}

/* ---- test devices: the sw device's ops, with a refusal or a late teardown ---- */

static struct ulpo_ddp_dev test_dev;
static struct ulpo_ddp_dev_ops test_ops;
static atomic_uint setups, refusals, violations, late_pending;
static bool refuse_odd, late_teardown;
static pthread_mutex_t late_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct ulpo_ddp_sk *sk;
	uint32_t cid;
	void *ctx;
	bool busy;
	atomic_bool sw_done;	/* the sw device's own teardown finished */
} late[4096];
static const struct ulpo_ddp_ulp_ops *late_ulp;
static uint8_t pending_id[65536];

static int t_setup(struct ulpo_ddp_dev *d, struct ulpo_ddp_sk *sk, struct ulpo_ddp_io *io)
{
	unsigned int n = atomic_fetch_add(&setups, 1);

	if (late_teardown && __atomic_load_n(&pending_id[io->command_id], __ATOMIC_ACQUIRE))
		atomic_fetch_add(&violations, 1);
	if (refuse_odd && (n & 1)) {
		atomic_fetch_add(&refusals, 1);
		return -ENOSPC;
	}
	return ulpo_ddp_dev_sw()->ops->setup(d, sk, io);
}

/* The sw device does the work. Refusal mode: its teardown completions go straight to the
 * host. Late mode: they only mark the entry, and a thread tells the host later. */
static void sw_done_mark(void *ctx)
{
	if (ctx)
		atomic_store((atomic_bool *)ctx, true);
}

static const struct ulpo_ddp_ulp_ops mark_ops = { .ddp_teardown_done = sw_done_mark };

static int t_sk_add(struct ulpo_ddp_dev *d, int fd, const struct ulpo_ddp_config *cfg,
		    const struct ulpo_ddp_ulp_ops *ops, struct ulpo_ddp_sk **ret)
{
	late_ulp = ops;
	return ulpo_ddp_dev_sw()->ops->sk_add(d, fd, cfg, late_teardown ? &mark_ops : ops, ret);
}

static void t_teardown(struct ulpo_ddp_dev *d, struct ulpo_ddp_sk *sk, struct ulpo_ddp_io *io,
		       void *ctx)
{
	size_t i;

	if (!late_teardown) {
		ulpo_ddp_dev_sw()->ops->teardown(d, sk, io, ctx);
		return;
	}
	pthread_mutex_lock(&late_lock);
	for (i = 0; i < 4096 && late[i].busy; i++)
		;
	if (i < 4096) {
		late[i].busy = true;
		late[i].sk = sk;
		late[i].cid = io->command_id;
		late[i].ctx = ctx;
		atomic_store(&late[i].sw_done, false);
		__atomic_store_n(&pending_id[io->command_id], 1, __ATOMIC_RELEASE);
		atomic_fetch_add(&late_pending, 1);
	}
	pthread_mutex_unlock(&late_lock);
	ulpo_ddp_dev_sw()->ops->teardown(d, sk, io, i < 4096 ? (void *)&late[i].sw_done : NULL);
}

static atomic_bool late_stop;

static void *late_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&late_stop) || atomic_load(&late_pending)) {
		nanosleep(&(struct timespec){ .tv_nsec = 2 * 1000 * 1000 }, NULL);
		pthread_mutex_lock(&late_lock);
		for (size_t i = 0; i < 4096; i++) {
			if (!late[i].busy || !atomic_load(&late[i].sw_done))
				continue;
			late[i].busy = false;
			__atomic_store_n(&pending_id[late[i].cid], 0, __ATOMIC_RELEASE);
			atomic_fetch_sub(&late_pending, 1);
			late_ulp->ddp_teardown_done(late[i].ctx);
		}
		pthread_mutex_unlock(&late_lock);
	}
	return NULL;
}

static void t_refused(uint8_t *src, uint8_t *dst)
{
	struct ulpo_nvme_ctrl *c;
	struct ulpo_nvme_stats st;
	struct ulpo_ddp_stats ds;
	int r;

	refuse_odd = true;
	ulpo_ddp_dev_register(&test_dev);
	c = connect_host(addr, true, false);
	if (c) {
		memset(dst, 0, AREA);
		r = read_area(c, dst, AREA, 64 * 1024, 16);
		ulpo_nvme_get_stats(c, &st);
		ulpo_ddp_get_stats(&test_dev, &ds);
		CHECK(r == 0, "read: %s", ulpo_nvme_status_str(r));
		CHECK(!memcmp(src, dst, AREA), "data differs when setup is refused");
		CHECK(ds.rx_nvme_tcp_setup_fail == atomic_load(&refusals) && ds.rx_nvme_tcp_setup_fail,
		      "setup_fail %llu refusals %u", (unsigned long long)ds.rx_nvme_tcp_setup_fail,
		      atomic_load(&refusals));
		CHECK(st.placed_bytes && st.copied_bytes >= AREA / 2 - 64 * 1024,
		      "placed %llu copied %llu", (unsigned long long)st.placed_bytes,
		      (unsigned long long)st.copied_bytes);
		ulpo_nvme_disconnect(c);
		printf("refused: setup failed for %llu of %u commands, those copied: same data\n",
		       (unsigned long long)ds.rx_nvme_tcp_setup_fail, atomic_load(&setups));
	}
	ulpo_ddp_dev_unregister(&test_dev);
	refuse_odd = false;
}

static void t_late_teardown(uint8_t *src, uint8_t *dst)
{
	struct ulpo_nvme_ctrl *c;
	pthread_t th;
	int r;

	late_teardown = true;
	atomic_store(&setups, 0);
	ulpo_ddp_dev_register(&test_dev);
	pthread_create(&th, NULL, late_thread, NULL);
	c = connect_host(addr, false, false);
	if (c) {
		for (int round = 0; round < 4; round++) {
			memset(dst, 0, AREA);
			r = read_area(c, dst, AREA, 16 * 1024, 32);
			CHECK(r == 0, "read: %s", ulpo_nvme_status_str(r));
			CHECK(!memcmp(src, dst, AREA), "data differs with late teardowns");
		}
		ulpo_nvme_disconnect(c);
	}
	atomic_store(&late_stop, true);
	pthread_join(th, NULL);
	CHECK(atomic_load(&violations) == 0, "%u ids set up again before their teardown ended",
	      atomic_load(&violations));
	CHECK(atomic_load(&setups) >= 4 * AREA / (16 * 1024), "only %u setups",
	      atomic_load(&setups));
	printf("late teardown: %u setups, none of an id whose teardown had not ended\n",
	       atomic_load(&setups));
	ulpo_ddp_dev_unregister(&test_dev);
	late_teardown = false;
}

/* ---- a proxy that corrupts the target's PDUs ---- */

enum corrupt { CORRUPT_DATA, CORRUPT_HEADER, DROP_PDU };

struct proxy {
	int lfd, port;
	int target_port;
	enum corrupt what;
	int nth;		/* corrupt the nth C2HData PDU (1-based) */
	bool digests;
};

static int read_full(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = recv(fd, p, n, 0);

		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int write_full(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

struct pipe_arg {
	int from, to;
	struct proxy *p;
	bool c2h;
};

static void *pump(void *arg)
{
	struct pipe_arg *a = arg;
	uint8_t *buf = malloc(8 << 20);
	int c2h_seen = 0;
	bool drop_rsp = false;

	for (;;) {
		struct nvme_tcp_hdr h;

		if (read_full(a->from, buf, 8))
			break;
		memcpy(&h, buf, 8);
		if (h.plen < 8 || h.plen > (8u << 20) || read_full(a->from, buf + 8, h.plen - 8))
			break;
		if (drop_rsp && h.type == NVME_TCP_RSP) {
			drop_rsp = false;
			continue;
		}
		if (a->c2h && h.type == NVME_TCP_C2H_DATA && ++c2h_seen == a->p->nth) {
			if (a->p->what == DROP_PDU) {
				/* That read's data and response: it never completes. */
				drop_rsp = !(h.flags & NVME_TCP_F_DATA_SUCCESS);
				continue;
			}
			if (a->p->what == CORRUPT_DATA)
				buf[h.pdo + 1] ^= 0x40;		/* payload: data digest fails */
			else
				buf[12] ^= 0x01;		/* datao: header digest fails */
		}
		if (write_full(a->to, buf, h.plen))
			break;
	}
	shutdown(a->to, SHUT_RDWR);
	shutdown(a->from, SHUT_RDWR);
	free(buf);
	free(a);
	return NULL;
}

/* One connection at a time: the host's queues connect in order (admin, then I/O). */
static void *proxy_main(void *arg)
{
	struct proxy *p = arg;

	for (int n = 0; n < 2; n++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((uint16_t)p->target_port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int h = accept(p->lfd, NULL, NULL), t = socket(AF_INET, SOCK_STREAM, 0);
		struct pipe_arg *up = malloc(sizeof(*up)), *down = malloc(sizeof(*down));
		pthread_t th;

		if (h < 0 || connect(t, (void *)&a, sizeof(a))) {
			free(up);
			free(down);
			break;
		}
		*up = (struct pipe_arg){ h, t, p, false };
		/* Only the I/O queue (the second connection) is corrupted. */
		*down = (struct pipe_arg){ t, h, p, n == 1 };
		pthread_create(&th, NULL, pump, up);
		pthread_detach(th);
		pthread_create(&th, NULL, pump, down);
		pthread_detach(th);
	}
	return NULL;
}

static int proxy_start(struct proxy *p)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	pthread_t th;

	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(p->lfd, (void *)&a, sizeof(a)) || listen(p->lfd, 4) ||
	    getsockname(p->lfd, (void *)&a, &al))
		return -1;
	p->port = ntohs(a.sin_port);
	pthread_create(&th, NULL, proxy_main, p);
	pthread_detach(th);
	return 0;
}

static void t_data_digest(int target_port, uint8_t *src)
{
	/* Static: the proxy's threads outlive this function. */
	static struct proxy p;
	char a[64];
	struct ulpo_nvme_ctrl *c;
	struct ulpo_nvme_stats st;
	uint8_t *buf = malloc(64 * 1024);
	int r[6];

	p = (struct proxy){ .target_port = target_port, .what = CORRUPT_DATA, .nth = 3 };
	proxy_start(&p);
	snprintf(a, sizeof(a), "127.0.0.1:%d", p.port);
	c = connect_host(a, true, false);
	if (!c)
		return;
	for (int i = 0; i < 6; i++) {
		memset(buf, 0, 64 * 1024);
		r[i] = ulpo_nvme_read(c, 1, (uint64_t)i * 128, 128, buf);
		if (i != 2)
			CHECK(r[i] == 0 && !memcmp(buf, src + (size_t)i * 64 * 1024, 64 * 1024),
			      "read %d after the bad digest: %s", i, ulpo_nvme_status_str(r[i]));
	}
	ulpo_nvme_get_stats(c, &st);
	CHECK(r[2] == NVME_SC_DATA_XFER_ERROR, "the corrupted read: %s",
	      ulpo_nvme_status_str(r[2]));
	CHECK(st.ddgst_errors == 1, "ddgst errors %llu", (unsigned long long)st.ddgst_errors);
	ulpo_nvme_disconnect(c);
	free(buf);
	printf("data digest: the corrupted read failed with '%s', the 5 others succeeded\n",
	       ulpo_nvme_status_str(r[2]));
}

static void t_header_digest(int target_port)
{
	static struct proxy p;
	char a[64];
	struct ulpo_nvme_ctrl *c;
	struct ulpo_nvme_stats st;
	uint8_t *buf = malloc(64 * 1024);
	int r1, r2, r3;

	p = (struct proxy){ .target_port = target_port, .what = CORRUPT_HEADER, .nth = 2 };
	proxy_start(&p);
	snprintf(a, sizeof(a), "127.0.0.1:%d", p.port);
	c = connect_host(a, true, false);
	if (!c)
		return;
	r1 = ulpo_nvme_read(c, 1, 0, 128, buf);
	r2 = ulpo_nvme_read(c, 1, 128, 128, buf);
	r3 = ulpo_nvme_read(c, 1, 256, 128, buf);
	ulpo_nvme_get_stats(c, &st);
	CHECK(r1 == 0, "first read: %s", ulpo_nvme_status_str(r1));
	CHECK(r2 == -EPROTO, "the read with the bad header: %s", ulpo_nvme_status_str(r2));
	CHECK(r3 == -EPROTO, "the queue after it: %s", ulpo_nvme_status_str(r3));
	CHECK(st.hdgst_errors == 1, "hdgst errors %llu", (unsigned long long)st.hdgst_errors);
	ulpo_nvme_disconnect(c);
	free(buf);
	printf("header digest: the queue ended with a TermReq; the caller saw '%s'\n",
	       ulpo_nvme_status_str(r2));
}

/* A write given a buffer longer than its blocks sends only its blocks: the stream stays
 * in step (the next read works) and nothing past them reaches the target. */
static void t_long_buffer(uint8_t *src)
{
	struct ulpo_nvme_ctrl *c = connect_host(addr, true, false);
	uint8_t *big = malloc(8192), back[1024];
	struct iovec v = { big, 8192 };
	struct io io = { 0 };
	int r;

	if (!c)
		return;
	memset(big, 0x5c, 8192);
	r = ulpo_nvme_submit_write(c, 1, 1, 4096, 1, &v, 1, cb, &io);
	while (!r && !io.done)
		if (ulpo_nvme_poll(c, 1, 100) < 0)
			break;
	CHECK(r == 0 && io.done && io.status == 0, "write: %s", ulpo_nvme_status_str(r ? r : io.status));
	r = ulpo_nvme_read(c, 1, 4096, 2, back);
	CHECK(r == 0, "read after it: %s", ulpo_nvme_status_str(r));
	CHECK(back[0] == 0x5c && back[511] == 0x5c && !memcmp(back + 512, src + 4097 * 512, 512),
	      "only the write's block changed");
	ulpo_nvme_disconnect(c);
	free(big);
}

/* A read whose data never comes: -ETIMEDOUT after the timeout, and the queue goes on. */
static void t_timeout(int target_port, uint8_t *src)
{
	static struct proxy p;
	struct ulpo_nvme_opts o = { .hdgst = true, .ddgst = true, .queue_depth = 8,
				    .timeout_ms = 300 };
	struct ulpo_nvme_ctrl *c = NULL;
	struct ulpo_nvme_stats st;
	uint8_t *buf = malloc(64 * 1024);
	char a[64];
	int r[4];

	p = (struct proxy){ .target_port = target_port, .what = DROP_PDU, .nth = 2 };
	proxy_start(&p);
	snprintf(a, sizeof(a), "127.0.0.1:%d", p.port);
	o.addr = a;
	r[0] = ulpo_nvme_connect(&o, &c);
	CHECK(r[0] == 0, "connect: %s", strerror(-r[0]));
	if (r[0]) {
		free(buf);
		return;
	}
	for (int i = 0; i < 4; i++) {
		memset(buf, 0, 64 * 1024);
		r[i] = ulpo_nvme_read(c, 1, (uint64_t)i * 128, 128, buf);
		if (i != 1)
			CHECK(r[i] == 0 && !memcmp(buf, src + (size_t)i * 64 * 1024, 64 * 1024),
			      "read %d around the lost one: %s", i, ulpo_nvme_status_str(r[i]));
	}
	ulpo_nvme_get_stats(c, &st);
	CHECK(r[1] == -ETIMEDOUT, "the read whose data was lost: %s", ulpo_nvme_status_str(r[1]));
	CHECK(st.timeouts == 1, "timeouts %llu", (unsigned long long)st.timeouts);
	ulpo_nvme_disconnect(c);
	free(buf);
	printf("timeout: the read whose data was lost got '%s', the 3 others succeeded\n",
	       ulpo_nvme_status_str(r[1]));
}

int main(void)
{
	struct ulpo_nvmet_opts to = { .listen = "127.0.0.1:0", .ram_bytes = 64 * MIB };
	struct ulpo_nvmet *t;
	uint8_t *src = malloc(AREA), *dst = malloc(AREA);
	int r;

	r = ulpo_nvmet_start(&to, &t);
	if (r) {
		fprintf(stderr, "target: %s\n", strerror(-r));
		return 1;
	}
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ulpo_nvmet_port(t));
	test_ops = *ulpo_ddp_dev_sw()->ops;
	test_ops.setup = t_setup;
	test_ops.sk_add = t_sk_add;
	test_ops.teardown = t_teardown;
	test_dev = (struct ulpo_ddp_dev){ .name = "test", .ops = &test_ops,
					  .caps_supported = ULPO_DDP_CAP_NVME_TCP |
							    ULPO_DDP_CAP_NVME_TCP_DDGST,
					  .caps_enabled = ULPO_DDP_CAP_NVME_TCP |
							  ULPO_DDP_CAP_NVME_TCP_DDGST };
	fill(src, AREA, 7);
	t_placed(src, dst);
	t_copied(src, dst);
	t_refused(src, dst);
	t_late_teardown(src, dst);
	t_data_digest(ulpo_nvmet_port(t), src);
	t_header_digest(ulpo_nvmet_port(t));
	t_timeout(ulpo_nvmet_port(t), src);
	t_long_buffer(src);
	ulpo_nvmet_stop(t);
	free(src);
	free(dst);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
