/* test_epoll.c - epoll under the LD_PRELOAD shim, with plain libc calls only: a TLS
 * socket is readable when a whole record or plaintext is held, not when the kernel has
 * part of a record; epoll_data comes back unchanged; EPOLLET, EPOLLONESHOT, nested sets,
 * plain members, close. Without the shim it runs against the kernel's kTLS, if loaded. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>

#include "../tls/tls_helpers.h"

int t_failed_checks;
const char *t_current;
static bool g_shim, g_pwait2;

#define MAGIC 0xfeedface12345678ull
#define MAGIC2 0x0badcafe87654321ull

/* epoll_wait, or epoll_pwait2 (its own timeout path) when the run says so. */
static int ewait(int ep, struct epoll_event *ev, int max, int ms)
{
	struct timespec t = { ms / 1000, ms % 1000 * 1000000L };
	int n;

	do
		n = g_pwait2 ? epoll_pwait2(ep, ev, max, ms < 0 ? NULL : &t, NULL)
			     : epoll_wait(ep, ev, max, ms);
	while (n < 0 && errno == EINTR);
	return n;
}

/* One wait: the count, and the first event's data and events. */
static int wait1(int ep, int ms, uint64_t *data, uint32_t *events)
{
	struct epoll_event ev[8];
	int n = ewait(ep, ev, 8, ms);

	*data = n > 0 ? ev[0].data.u64 : 0;
	*events = n > 0 ? ev[0].events : 0;
	return n;
}

static int add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event e = { .events = events, .data.u64 = data };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
}

static int mod(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event e = { .events = events, .data.u64 = data };

	return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
}

static int set_key(int fd, int dir, const struct variant *v, uint64_t seed)
{
	struct keys k;

	keys_make(v, seed, &k);
	return setsockopt(fd, SOL_TLS, dir, k.info, k.len);
}

/* Bytes queued in the kernel for fd (the TCP socket's own count). */
static int kernel_queued(int fd)
{
	int n = -1;

	ioctl(fd, FIONREAD, &n);
	return n;
}

/* Until the kernel holds at least `want` bytes for fd (records arrive in their time).
 * An offloaded connection's device takes them from the kernel as they come: then until
 * ulpo holds a record (a partial one never is: at most 300 ms), and a moment for the
 * rest of what was sent on loopback. */
static void wait_queued(int fd, int want)
{
	int path = 0;
	socklen_t len = sizeof(path);

	if (getsockopt(fd, SOL_ULPO, ULPO_OFFLOAD_PATH, &path, &len) == 0 &&
	    (path & ULPO_PATH_TOE_RX)) {
		poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 300);
		usleep(20000);
		return;
	}
	for (int i = 0; i < 1000 && kernel_queued(fd) < want; i++)
		usleep(1000);
}

/* CPU time of this thread: a wait that returns nothing must not have spun. */
static long cpu_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* A wait that must time out asleep (not woken over and over for nothing). */
static void quiet(int ep, int ms)
{
	long t0 = cpu_ms();
	uint64_t d;
	uint32_t e;

	CHECK_EQ(wait1(ep, ms, &d, &e), 0);
	CHECK(cpu_ms() - t0 < ms / 2);
}

static void send_n(int fd, size_t n, char fill)
{
	char buf[4096];

	memset(buf, fill, sizeof(buf));
	CHECK_EQ(send(fd, buf, n, 0), n);
}

static size_t drain(int fd)
{
	char buf[8192];
	size_t got = 0;
	ssize_t r;

	while ((r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		got += (size_t)r;
	return got;
}

/* (1) Part of a record in the kernel is not readable; the rest makes it so, also for
 * ET and ONESHOT (the partial record must neither take the edge nor disarm). The fd is
 * added before it becomes TLS, as a server adds an accepted fd. */
static void t_partial(const struct variant *v, uint64_t seed)
{
	static const uint32_t modes[] = { 0, EPOLLET, EPOLLONESHOT };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		int a1, a2, b1, b2, ep = epoll_create1(0);
		uint8_t rec[256], pt[64];
		uint64_t d;
		uint32_t e;
		size_t len;

		CHECK_EQ(tcp_pair(&a1, &a2), 0);
		CHECK_EQ(tcp_pair(&b1, &b2), 0);
		CHECK_EQ(add(ep, b2, EPOLLIN | modes[i], MAGIC), 0);
		CHECK_EQ(ulp(a1), 0);
		CHECK_EQ(set_key(a1, TLS_TX, v, seed), 0);
		CHECK_EQ(ulp(b2), 0);
		CHECK_EQ(set_key(b2, TLS_RX, v, seed), 0);
		/* A record made by the TLS end of one pair, carried by hand to the other. */
		send_n(a1, 40, 'p');
		CHECK_EQ(read_full(a2, rec, 5), 5);
		len = 5 + ((size_t)rec[3] << 8 | rec[4]);
		CHECK(len < sizeof(rec));
		CHECK_EQ(read_full(a2, rec + 5, len - 5), len - 5);
		CHECK_EQ(write(b1, rec, len / 2), len / 2);
		wait_queued(b2, (int)(len / 2));
		quiet(ep, 100);		/* the kernel's level does not repeat */
		CHECK_EQ(write(b1, rec + len / 2, len - len / 2), len - len / 2);
		CHECK_EQ(wait1(ep, 1000, &d, &e), 1);
		CHECK(e == EPOLLIN && d == MAGIC);
		CHECK_EQ(recv(b2, pt, sizeof(pt), 0), 40);
		CHECK(pt[0] == 'p' && pt[39] == 'p');
		CHECK_EQ(wait1(ep, 50, &d, &e), 0);
		close(ep);
		close_pair(a1, a2);
		close_pair(b1, b2);
	}
}

/* A TLS pair c -> s with s (or both directions) in a fresh set; two records queued. */
static int two_records(const struct variant *v, uint64_t seed, int *c, int *s, uint32_t ev)
{
	int ep = epoll_create1(0);

	CHECK(tls_pair(v, seed, c, s, true) == 0);
	CHECK_EQ(add(ep, *s, ev, MAGIC), 0);
	send_n(*c, 1000, 'a');
	send_n(*c, 1000, 'b');
	wait_queued(*s, 2000);
	return ep;
}

/* (2) Plaintext held by ulpo while the kernel's queue is empty stays readable. */
static void t_held(const struct variant *v, uint64_t seed)
{
	int c, s, ep = two_records(v, seed, &c, &s, EPOLLIN);
	char buf[100];
	uint64_t d;
	uint32_t e;

	CHECK_EQ(wait1(ep, 1000, &d, &e), 1);
	CHECK_EQ(recv(s, buf, sizeof(buf), 0), 100);
	if (g_shim)
		CHECK_EQ(kernel_queued(s), 0);	/* else this checks nothing */
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(wait1(ep, 0, &d, &e), 1);
		CHECK(d == MAGIC && (e & EPOLLIN));
	}
	CHECK_EQ(drain(s), 1900);
	CHECK_EQ(wait1(ep, 50, &d, &e), 0);
	/* Writable, with the program's data. */
	CHECK_EQ(mod(ep, s, EPOLLIN | EPOLLOUT, MAGIC2), 0);
	CHECK_EQ(wait1(ep, 100, &d, &e), 1);
	CHECK(d == MAGIC2 && e == EPOLLOUT);
	close(ep);
	close_pair(c, s);
}

/* (3) EPOLLET: held data is reported on a new edge only (ADD/MOD, a kernel event). */
static void t_et(const struct variant *v, uint64_t seed)
{
	int c, s, ep = two_records(v, seed, &c, &s, EPOLLIN | EPOLLET);
	char buf[100];
	uint64_t d;
	uint32_t e;

	CHECK_EQ(wait1(ep, 1000, &d, &e), 1);
	CHECK(d == MAGIC);
	CHECK_EQ(recv(s, buf, sizeof(buf), 0), 100);
	CHECK_EQ(wait1(ep, 50, &d, &e), 0);	/* held, but no new edge */
	CHECK_EQ(mod(ep, s, EPOLLIN | EPOLLET, MAGIC2), 0);
	CHECK_EQ(wait1(ep, 0, &d, &e), 1);	/* MOD is an edge */
	CHECK(d == MAGIC2);
	CHECK_EQ(wait1(ep, 50, &d, &e), 0);
	send_n(c, 10, 'c');			/* the kernel's edge */
	CHECK_EQ(wait1(ep, 1000, &d, &e), 1);
	CHECK(d == MAGIC2 && (e & EPOLLIN));
	CHECK_EQ(wait1(ep, 50, &d, &e), 0);
	CHECK_EQ(drain(s), 1910);
	close(ep);
	close_pair(c, s);
}

/* (3) EPOLLONESHOT: one report, then nothing (held or new data) until MOD. */
static void t_oneshot(const struct variant *v, uint64_t seed)
{
	int c, s, ep = two_records(v, seed, &c, &s, EPOLLIN | EPOLLONESHOT);
	char buf[100];
	uint64_t d;
	uint32_t e;

	CHECK_EQ(wait1(ep, 1000, &d, &e), 1);
	CHECK_EQ(recv(s, buf, sizeof(buf), 0), 100);
	CHECK_EQ(wait1(ep, 50, &d, &e), 0);
	CHECK_EQ(mod(ep, s, EPOLLIN | EPOLLONESHOT, MAGIC2), 0);
	CHECK_EQ(wait1(ep, 0, &d, &e), 1);	/* held in ulpo only */
	CHECK(d == MAGIC2 && (e & EPOLLIN));
	CHECK_EQ(wait1(ep, 50, &d, &e), 0);
	send_n(c, 10, 'c');
	quiet(ep, 50);				/* disarmed in the kernel too */
	CHECK_EQ(mod(ep, s, EPOLLIN | EPOLLONESHOT, MAGIC), 0);
	CHECK_EQ(wait1(ep, 1000, &d, &e), 1);
	CHECK(d == MAGIC);
	CHECK_EQ(drain(s), 1910);
	CHECK_EQ(mod(ep, s, EPOLLIN | EPOLLONESHOT, MAGIC2), 0);
	CHECK_EQ(wait1(ep, 50, &d, &e), 0);	/* armed, nothing held */
	send_n(c, 10, 'd');
	CHECK_EQ(wait1(ep, 1000, &d, &e), 1);
	CHECK(d == MAGIC2);
	CHECK_EQ(wait1(ep, 50, &d, &e), 0);
	CHECK_EQ(drain(s), 10);
	close(ep);
	close_pair(c, s);
}

/* (4) A set holding the TLS fd, polled by poll() and by an outer set: data held only
 * in ulpo makes the inner set readable; once read, it stops being so. */
static void t_nested(const struct variant *v, uint64_t seed)
{
	int c, s, in = two_records(v, seed, &c, &s, EPOLLIN), out = epoll_create1(0);
	struct pollfd p = { .fd = in, .events = POLLIN };
	char buf[100];
	uint64_t d;
	uint32_t e;

	CHECK_EQ(add(out, in, EPOLLIN, MAGIC2), 0);
	CHECK_EQ(poll(&p, 1, 1000), 1);
	CHECK_EQ(wait1(in, 0, &d, &e), 1);
	CHECK_EQ(recv(s, buf, sizeof(buf), 0), 100);
	if (g_shim)
		CHECK_EQ(kernel_queued(s), 0);
	p.revents = 0;
	CHECK_EQ(poll(&p, 1, 100), 1);
	CHECK(p.revents & POLLIN);
	CHECK_EQ(wait1(out, 100, &d, &e), 1);
	CHECK(d == MAGIC2 && (e & EPOLLIN));
	CHECK_EQ(wait1(in, 0, &d, &e), 1);
	CHECK(d == MAGIC);
	CHECK_EQ(drain(s), 1900);
	/* At most one wakeup for nothing (documented), then quiet. */
	wait1(in, 0, &d, &e);
	CHECK_EQ(poll(&p, 1, 50), 0);
	CHECK_EQ(wait1(out, 50, &d, &e), 0);
	/* New data reaches the outer set through the kernel. */
	send_n(c, 10, 'x');
	CHECK_EQ(wait1(out, 1000, &d, &e), 1);
	CHECK_EQ(wait1(in, 0, &d, &e), 1);
	CHECK_EQ(drain(s), 10);
	close(out);
	close(in);
	close_pair(c, s);
}

/* (5) A plain pair in a set with a TLS member: the kernel's semantics, errno included. */
static void t_plain(const struct variant *v, uint64_t seed)
{
	int c, s, p1, p2, ep = two_records(v, seed, &c, &s, EPOLLIN);
	struct epoll_event ev[4];
	uint64_t d;
	uint32_t e;
	int n;

	CHECK(tcp_pair(&p1, &p2) == 0);
	CHECK_EQ(drain(s), 2000);
	CHECK_EQ(add(ep, p2, EPOLLIN, 42), 0);
	CHECK_ERR(add(ep, p2, EPOLLIN, 42), EEXIST);
	CHECK_ERR(mod(ep, p1, EPOLLIN, 1), ENOENT);
	CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_DEL, p1, NULL), ENOENT);
	CHECK_ERR(add(ep, ep, EPOLLIN, 1), EINVAL);
	CHECK_ERR(epoll_wait(ep, ev, 0, 0), EINVAL);
	CHECK_ERR(add(-1, p2, EPOLLIN, 1), EBADF);
	CHECK_EQ(wait1(ep, 0, &d, &e), 0);
	CHECK_EQ(write(p1, "x", 1), 1);
	for (int i = 0; i < 2; i++) {		/* level-triggered */
		CHECK_EQ(wait1(ep, 1000, &d, &e), 1);
		CHECK(d == 42 && e == EPOLLIN);
	}
	CHECK_EQ(mod(ep, p2, EPOLLIN | EPOLLET, 43), 0);
	CHECK_EQ(wait1(ep, 0, &d, &e), 1);
	CHECK_EQ(wait1(ep, 0, &d, &e), 0);
	CHECK_EQ(mod(ep, p2, EPOLLIN | EPOLLONESHOT, 44), 0);
	CHECK_EQ(wait1(ep, 0, &d, &e), 1);
	CHECK(d == 44);
	CHECK_EQ(write(p1, "y", 1), 1);
	CHECK_EQ(wait1(ep, 50, &d, &e), 0);
	/* Both kinds at once, each with its own data. */
	CHECK_EQ(mod(ep, p2, EPOLLIN, 45), 0);
	send_n(c, 10, 'z');
	wait_queued(s, 10);
	n = ewait(ep, ev, 4, 1000);
	if (n == 1)	/* the record may come a moment later */
		n += ewait(ep, ev + 1, 3, 1000);
	CHECK_EQ(n, 2);
	CHECK((ev[0].data.u64 == 45 && ev[1].data.u64 == MAGIC) ||
	      (ev[1].data.u64 == 45 && ev[0].data.u64 == MAGIC));
	CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_DEL, p2, NULL), 0);
	CHECK_EQ(drain(s), 10);
	CHECK_EQ(wait1(ep, 0, &d, &e), 0);
	close(ep);
	close_pair(p1, p2);
	close_pair(c, s);
}

/* (6) close() of a member forgets it: its number, back as a TLS socket with data held
 * but not in the set, is not reported. close() of the set frees it. */
static void t_close(const struct variant *v, uint64_t seed)
{
	int c, s, c2, s2, ep = two_records(v, seed, &c, &s, EPOLLIN), old = s;
	char buf[100];
	uint64_t d;
	uint32_t e;

	CHECK_EQ(wait1(ep, 1000, &d, &e), 1);
	close(s);
	CHECK_EQ(wait1(ep, 50, &d, &e), 0);
	CHECK_EQ(tls_pair(v, seed + 1, &c2, &s2, true), 0);
	if (s2 != old) {	/* the new socket takes the old number */
		CHECK_EQ(dup2(s2, old), old);
		close(s2);
		s2 = old;
	}
	send_n(c2, 1000, 'a');
	send_n(c2, 1000, 'b');
	wait_queued(s2, 2000);
	CHECK_EQ(recv(s2, buf, sizeof(buf), 0), 100);	/* the rest is held in ulpo */
	CHECK_EQ(wait1(ep, 50, &d, &e), 0);
	CHECK_EQ(add(ep, s2, EPOLLIN, MAGIC2), 0);
	CHECK_EQ(wait1(ep, 0, &d, &e), 1);
	CHECK(d == MAGIC2);
	CHECK_EQ(close(ep), 0);
	CHECK_ERR(epoll_wait(ep, &(struct epoll_event){ 0 }, 1, 0), EBADF);
	CHECK_ERR(add(ep, c, EPOLLIN, 1), EBADF);
	CHECK_EQ(epoll_create1(0), ep);		/* the number again, a new set */
	CHECK_EQ(add(ep, s2, EPOLLIN, 7), 0);
	CHECK_EQ(wait1(ep, 0, &d, &e), 1);
	CHECK(d == 7);
	CHECK_EQ(drain(s2), 1900);
	close(ep);
	close_pair(c2, s2);
	close(c);
}

/* Threads: a waiter blocked in the kernel sees a TLS member added with data already
 * held in ulpo, and a record sent meanwhile. */
struct waiter {
	int ep, n;
	uint64_t d;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	uint32_t e;

	w->n = wait1(w->ep, 2000, &w->d, &e);
	return NULL;
}

static void t_threads(const struct variant *v, uint64_t seed)
{
	int c, s, ep = two_records(v, seed, &c, &s, EPOLLIN), ep2 = epoll_create1(0);
	struct waiter w = { .ep = ep2 };
	pthread_t t;
	char buf[100];

	CHECK_EQ(recv(s, buf, sizeof(buf), 0), 100);	/* the rest is held in ulpo */
	CHECK_EQ(pthread_create(&t, NULL, waiter_main, &w), 0);
	usleep(50000);
	CHECK_EQ(add(ep2, s, EPOLLIN, MAGIC2), 0);
	pthread_join(t, NULL);
	CHECK_EQ(w.n, 1);
	CHECK(w.d == MAGIC2);
	CHECK_EQ(drain(s), 1900);
	w.n = -1;
	CHECK_EQ(pthread_create(&t, NULL, waiter_main, &w), 0);
	usleep(50000);
	send_n(c, 10, 'w');
	pthread_join(t, NULL);
	CHECK_EQ(w.n, 1);
	CHECK_EQ(drain(s), 10);
	close(ep2);
	close(ep);
	close_pair(c, s);
}

static const struct {
	const char *name;
	void (*fn)(const struct variant *v, uint64_t seed);
} tests[] = {
	{ "partial", t_partial }, { "held", t_held }, { "et", t_et },
	{ "oneshot", t_oneshot }, { "nested", t_nested }, { "plain", t_plain },
	{ "close", t_close }, { "threads", t_threads },
};

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : getenv("TEST_ONLY");
	const char *pre = getenv("LD_PRELOAD");
	int passed = 0, failed = 0, c, s;
	char name[128];

	g_shim = pre && strstr(pre, "ulpo");
	signal(SIGPIPE, SIG_IGN);
	if (tcp_pair(&c, &s) || ulp(c)) {
		printf("SKIP: no TCP_ULP \"tls\" (run with LD_PRELOAD=libulpo-preload.so)\n");
		return 77;
	}
	close_pair(c, s);
	for (size_t vi = 0; vi < 2 * NVARIANTS; vi++) {
		const struct variant *v = &variants[vi % NVARIANTS];

		if (v->cipher != TLS_CIPHER_AES_GCM_128)
			continue;	/* readiness does not depend on the cipher */
		g_pwait2 = vi >= NVARIANTS;
		for (size_t ti = 0; ti < sizeof(tests) / sizeof(tests[0]); ti++) {
			int before = t_failed_checks;

			snprintf(name, sizeof(name), "%s/%s%s", tests[ti].name, v->name,
				 g_pwait2 ? "/pwait2" : "");
			if (only && !strstr(name, only))
				continue;
			t_current = name;
			tests[ti].fn(v, 0x5eed + vi * 100 + ti);
			t_tally(before, name, &passed, &failed);
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
