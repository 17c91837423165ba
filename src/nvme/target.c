/* target.c - the NVMe/TCP target's life: options, the listener and its thread (which also
 * reaps ended connections and enforces Keep Alive), one thread per connection, the
 * controllers that connections create and join, stop. */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>

#include "core/sys.h"
#include "nvme/target.h"

static uint32_t max_u32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}

static int opts_apply(struct ulpo_nvmet *t, const struct ulpo_nvmet_opts *opts)
{
	struct ulpo_nvmet_opts *o = &t->o;
	const char *nqn = opts->subnqn ? opts->subnqn : ULPO_NVME_DEFAULT_SUBNQN;
	uint64_t rnd = 0;

	*o = *opts;
	/* NQNs are at most 223 bytes; Identify and Connect carry them in 256. */
	if (!*nqn || strlen(nqn) > 223)
		return -EINVAL;
	strcpy(t->subnqn, nqn);
	o->subnqn = t->subnqn;
	o->listen = NULL;
	if (!o->lba_size)
		o->lba_size = 512;
	if (!o->maxh2cdata)
		o->maxh2cdata = 131072;
	if (!o->ioccsz)
		o->ioccsz = 8192;
	if (!o->mqes)
		o->mqes = 128;
	if (!o->max_io_queues)
		o->max_io_queues = 16;
	if ((o->lba_size != 512 && o->lba_size != 4096) || !!o->ram_bytes == !!o->file)
		return -EINVAL;
	/* Bounded: they size every connection's buffer and slot table. */
	if (o->maxh2cdata < 4096 || o->maxh2cdata > (16u << 20) || o->maxh2cdata % 4 ||
	    o->ioccsz % 16 || o->ioccsz > NVMET_MAX_XFER || o->mqes < 2 || o->mqes > 1024 ||
	    o->max_io_queues > 1024)
		return -EINVAL;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint64_t)ulpo_now_ms() ^ (uint64_t)getpid() << 32;
	snprintf(t->sn, sizeof(t->sn), "%016llx", (unsigned long long)rnd);
	/* Namespace 1's identifiers (UUID, NGUID), for this run of the target: Linux hosts
	 * ask for them (Identify CNS 3) and refuse a namespace without. */
	if (getrandom(t->ns_uuid, sizeof(t->ns_uuid), GRND_NONBLOCK) != sizeof(t->ns_uuid))
		for (size_t i = 0; i < sizeof(t->ns_uuid); i++)
			t->ns_uuid[i] = (uint8_t)(rnd >> (i % 8 * 8) ^ i * 37);
	t->ns_uuid[6] = (uint8_t)((t->ns_uuid[6] & 0x0f) | 0x40);	/* version 4 */
	t->ns_uuid[8] = (uint8_t)((t->ns_uuid[8] & 0x3f) | 0x80);
	return 0;
}

int nvmet_create(const struct ulpo_nvmet_opts *opts, struct ulpo_nvmet **ret)
{
	struct ulpo_nvmet *t;
	int r;

	if (!opts || !ret)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->lfd = t->wake_fd = -1;
	t->next_cntlid = 1;
	r = opts_apply(t, opts);
	if (!r)
		r = nvmet_ns_open(&t->ns, &t->o);
	if (r) {
		free(t);
		return r;
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->gone, NULL);
	*ret = t;
	return 0;
}

/* "addr:port", "[v6addr]:port", "addr" (port 4420); addresses are numeric (no resolver:
 * static programs link this), an empty one or "*" is every IPv4 address. */
static int listen_on(struct ulpo_nvmet *t, const char *spec)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	char host[64], *end;
	const char *colon;
	socklen_t sl = sizeof(ss), len;
	unsigned long port = 4420;
	int fd, one = 1;

	if (!spec || strlen(spec) >= sizeof(host))
		return -EINVAL;
	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');

		if (!rb || (rb[1] && rb[1] != ':'))
			return -EINVAL;
		snprintf(host, sizeof(host), "%.*s", (int)(rb - spec - 1), spec + 1);
		colon = rb[1] ? rb + 1 : NULL;
	} else {
		colon = strrchr(spec, ':');
		if (colon && strchr(spec, ':') != colon)
			colon = NULL;		/* a bare IPv6 address */
		snprintf(host, sizeof(host), "%.*s",
			 colon ? (int)(colon - spec) : (int)strlen(spec), spec);
	}
	if (colon) {
		errno = 0;
		port = strtoul(colon + 1, &end, 10);
		if (!colon[1] || *end || errno || port > 65535)
			return -EINVAL;
	}
	memset(&ss, 0, sizeof(ss));
	if (!host[0] || !strcmp(host, "*")) {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	} else if (!strcmp(host, "localhost")) {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
	} else {
		return -EINVAL;
	}
	/* sin_port and sin6_port are at the same offset */
	sin->sin_port = htons((uint16_t)port);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	ulpo_sys_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	len = ss.ss_family == AF_INET ? sizeof(*sin) : sizeof(*sin6);
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 128) ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		int r = -errno;

		ulpo_sys_close(fd);
		return r;
	}
	t->lfd = fd;
	t->port = ntohs(sin->sin_port);
	return 0;
}

void nvmet_wake(struct ulpo_nvmet *t)
{
	uint64_t one = 1;

	if (t->wake_fd >= 0 && ulpo_sys_write(t->wake_fd, &one, sizeof(one)) < 0)
		return;		/* the counter is full: it is awake anyway */
}

static struct nvmet_conn *conn_new(struct ulpo_nvmet *t, int fd)
{
	struct nvmet_conn *q = calloc(1, sizeof(*q));
	uint32_t inline_max = max_u32(t->o.ioccsz, NVMET_ADMIN_INLINE);

	if (!q)
		return NULL;
	q->t = t;
	nvme_tcp_conn_init(&q->tc, fd);
	/* Everything the host sends lands in our buffers first: read in batches. */
	q->tc.rx_batch = true;
	/* A sanity bound only: data is read into buf after its length was checked. Twice
	 * the largest, so that an H2CData just over MAXH2CDATA gets its own FES. */
	q->tc.max_plen = NVME_TCP_MAX_HLEN + 2 * NVME_TCP_DIGEST_LEN + 256 +
			 2 * max_u32(inline_max, t->o.maxh2cdata);
	q->buf_len = max_u32(max_u32(NVMET_C2H_CHUNK, t->o.maxh2cdata), inline_max);
	q->buf = malloc(q->buf_len);
	q->nr_slots = t->o.mqes;
	q->slots = calloc(q->nr_slots, sizeof(*q->slots));
	if (!q->buf || !q->slots) {
		free(q->buf);
		free(q->slots);
		free(q);
		return NULL;
	}
	return q;
}

static void conn_free(struct nvmet_conn *q)
{
	free(q->buf);
	free(q->slots);
	free(q);
}

/* Put a connection on t->live, unless the target is stopping or full. */
static int conn_add(struct ulpo_nvmet *t, struct nvmet_conn *q)
{
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (t->stopping)
		r = -ESHUTDOWN;
	else if (t->nr_live >= NVMET_MAX_CONNS)
		r = -EMFILE;
	if (!r) {
		q->next = t->live;
		t->live = q;
		t->nr_live++;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* The connection has ended: off t->live, out of its controller (the last queue frees
 * it), fd closed (under the lock, so nobody shuts down a reused fd), then on t->dead
 * for the acceptor to join if it has a thread. */
static void conn_end(struct nvmet_conn *q)
{
	struct ulpo_nvmet *t = q->t;
	struct nvmet_ctrl *dead;

	pthread_mutex_lock(&t->lock);
	for (struct nvmet_conn **p = &t->live; *p; p = &(*p)->next) {
		if (*p == q) {
			*p = q->next;
			break;
		}
	}
	t->nr_live--;
	dead = nvmet_ctrl_leave(q);
	ulpo_sys_close(q->tc.fd);
	q->tc.fd = -1;
	if (q->has_thread) {
		q->next = t->dead;
		t->dead = q;
	}
	pthread_cond_broadcast(&t->gone);
	pthread_mutex_unlock(&t->lock);
	nvmet_ctrl_free(dead);
}

static void *conn_thread(void *arg)
{
	struct nvmet_conn *q = arg;

	nvmet_conn_serve(q);
	conn_end(q);		/* q belongs to the acceptor from here */
	return NULL;
}

int nvmet_conn_run(struct ulpo_nvmet *t, int fd)
{
	struct nvmet_conn *q = conn_new(t, fd);
	int r;

	if (!q) {
		ulpo_sys_close(fd);
		return -ENOMEM;
	}
	r = conn_add(t, q);
	if (r) {
		ulpo_sys_close(fd);
		conn_free(q);
		return r;
	}
	nvmet_count(t, connections, 1);
	nvmet_conn_serve(q);
	conn_end(q);
	conn_free(q);
	return 0;
}

static void conn_start(struct ulpo_nvmet *t, int fd)
{
	struct nvmet_conn *q = conn_new(t, fd);
	int one = 1;

	ulpo_sys_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!q || conn_add(t, q)) {
		ulpo_sys_close(fd);
		if (q)
			conn_free(q);
		return;
	}
	nvmet_count(t, connections, 1);
	q->has_thread = true;
	if (pthread_create(&q->thread, NULL, conn_thread, q)) {
		q->has_thread = false;
		conn_end(q);
		conn_free(q);
	}
}

static void reap(struct nvmet_conn *q)
{
	while (q) {
		struct nvmet_conn *next = q->next;

		pthread_join(q->thread, NULL);
		conn_free(q);
		q = next;
	}
}

static void *acceptor(void *arg)
{
	struct ulpo_nvmet *t = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = t->lfd, .events = POLLIN },
				       { .fd = t->wake_fd, .events = POLLIN } };
		struct nvmet_conn *dead;
		uint64_t v;
		int timeout, fd;

		pthread_mutex_lock(&t->lock);
		if (t->stopping) {
			pthread_mutex_unlock(&t->lock);
			break;
		}
		timeout = nvmet_kato_check(t);
		dead = t->dead;
		t->dead = NULL;
		pthread_mutex_unlock(&t->lock);
		reap(dead);
		if (ulpo_sys_poll(p, 2, timeout) <= 0)
			continue;
		if (p[1].revents && ulpo_sys_read(t->wake_fd, &v, sizeof(v)) < 0)
			v = 0;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(t->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_start(t, fd);
		} else if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
			   errno == ENOBUFS) {
			/* Out of resources: do not spin; ended connections may free some. */
			struct pollfd w = { .fd = t->wake_fd, .events = POLLIN };

			ulpo_sys_poll(&w, 1, 100);
		}
	}
	return NULL;
}

ULPO_API int ulpo_nvmet_start(const struct ulpo_nvmet_opts *opts, struct ulpo_nvmet **ret)
{
	struct ulpo_nvmet *t;
	int r;

	if (!opts || !ret)
		return -EINVAL;
	r = nvmet_create(opts, &t);
	if (r)
		return r;
	r = listen_on(t, opts->listen);
	if (!r) {
		t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->wake_fd < 0)
			r = -errno;
	}
	if (!r) {
		r = -pthread_create(&t->acceptor, NULL, acceptor, t);
		t->has_acceptor = !r;
	}
	if (r) {
		ulpo_nvmet_stop(t);
		return r;
	}
	nvmet_log(t, "listening on port %d, %s", t->port, t->subnqn);
	*ret = t;
	return 0;
}

ULPO_API int ulpo_nvmet_port(const struct ulpo_nvmet *t)
{
	return t ? t->port : -EINVAL;
}

ULPO_API void ulpo_nvmet_get_stats(const struct ulpo_nvmet *t, struct ulpo_nvmet_stats *st)
{
	struct nvmet_stats *s;

	memset(st, 0, sizeof(*st));
	if (!t)
		return;
	s = (struct nvmet_stats *)&t->st;

	st->connections = atomic_load(&s->connections);
	st->admin_cmds = atomic_load(&s->admin_cmds);
	st->io_cmds = atomic_load(&s->io_cmds);
	st->read_bytes = atomic_load(&s->read_bytes);
	st->write_bytes = atomic_load(&s->write_bytes);
	st->term_reqs_sent = atomic_load(&s->term_reqs_sent);
	st->ddgst_errors = atomic_load(&s->ddgst_errors);
	st->hdgst_errors = atomic_load(&s->hdgst_errors);
	st->r2ts = atomic_load(&s->r2ts);
	st->h2c_pdus = atomic_load(&s->h2c_pdus);
	st->c2h_pdus = atomic_load(&s->c2h_pdus);
	st->c2h_success = atomic_load(&s->c2h_success);
	st->kato_expired = atomic_load(&s->kato_expired);
}

ULPO_API void ulpo_nvmet_stop(struct ulpo_nvmet *t)
{
	struct nvmet_conn *dead;

	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	pthread_mutex_unlock(&t->lock);
	if (t->has_acceptor) {
		nvmet_wake(t);
		pthread_join(t->acceptor, NULL);
	}
	/* Wake every connection thread from its blocking call; each then ends itself. */
	pthread_mutex_lock(&t->lock);
	for (struct nvmet_conn *q = t->live; q; q = q->next)
		ulpo_sys_shutdown(q->tc.fd, SHUT_RDWR);
	while (t->live)
		pthread_cond_wait(&t->gone, &t->lock);
	dead = t->dead;
	t->dead = NULL;
	pthread_mutex_unlock(&t->lock);
	reap(dead);
	if (t->lfd >= 0)
		ulpo_sys_close(t->lfd);
	if (t->wake_fd >= 0)
		ulpo_sys_close(t->wake_fd);
	nvmet_ns_close(&t->ns);
	pthread_cond_destroy(&t->gone);
	pthread_mutex_destroy(&t->lock);
	free(t);
}
