/* toe_bench.c - what whole-connection offload (the TOE model) saves the application: the CPU
 * time of the thread that calls ulpo_recv, per GB received over TLS, with the connection
 * offloaded next to the same receiver on the software path (issue 6: offload <= 0.3x inline).
 *
 * What is measured. One loopback TCP connection per run, AES-128-GCM, TLS 1.2 and 1.3 (RX
 * keys installed through ulpo's kTLS API). The receiver is this process's main thread, the
 * "application": ulpo_recv into a 256 KiB buffer until end of stream (default 1 GiB per
 * run). Around that loop only:
 *   app s/GB   getrusage(RUSAGE_THREAD), user+sys, of the receiving thread: the number the
 *              goal is about ("sys" is its kernel part: TCP reads, futex waits, ...;
 *              the kernel splits user/sys by tick sampling, so it is rough on short runs)
 *   proc s/GB  getrusage(RUSAGE_SELF): the receiver thread plus every ulpo thread (device
 *              threads, engine workers), so work moved off the application stays visible;
 *              the sender is in another process and not in it
 *   GB/s       plaintext bytes over wall time
 *   sleeps/GB  the receiving thread's voluntary context switches: how often it caught up
 *              with the sender and blocked (each time ulpo's software path frees and later
 *              re-allocates its receive buffer and key schedule: src/tls/tls_rx.c rx_quiet)
 *   sender s/GB  the sender process's CPU, to tell whether it limited GB/s
 * Medians over rounds; the ratio is offload/inline of the app s/GB medians, per TLS version,
 * against the goal <= 0.30. The goal is met only if every version run meets it.
 *
 * The modes, run side by side in interleaved rounds (round 1: 1.2 inline, 1.2 offload,
 * 1.3 inline, 1.3 offload; round 2: ...), so drift in the machine's state hits both:
 *   inline   the receiving socket opts out (ULPO_NO_OFFLOAD before TCP_ULP), engine inline:
 *            the caller's thread reads ciphertext from TCP and decrypts it
 *   offload  the default policy: the connection is offloaded whole, recv only copies
 * Each mode's path is read back (ULPO_OFFLOAD_PATH) after the keys are installed and
 * printed. A run whose path is not what the mode means is not measured: an "offload"
 * receiver without ULPO_PATH_TOE_RX, or an "inline" one with it. Then no ratio is reported
 * for that version (exit 1 under --check). Where ULPO_OFFLOAD_PATH cannot be read, the
 * counters (UlpoToeRx) decide for inline only; offload needs the socket's own answer.
 *
 * Why these choices.
 * - The sender is a child process forked before this process touches ulpo, driven over a
 *   socketpair (keys, byte count, "go"). Its CPU stays out of RUSAGE_SELF, its threads and
 *   ulpo state are its own, and its counters do not mix with the receiver's. It encrypts on
 *   the fly with ulpo TX on the software path (offload off in that process and
 *   ULPO_NO_OFFLOAD on its socket): every record has its own sequence number, hence its own
 *   nonce and ciphertext, so a round cannot be replayed from a small ring of records, and
 *   pre-building 1 GiB of records per run costs as much memory. Sealing costs the sender
 *   about what opening costs the inline receiver, so on 2 cores the two run in parallel;
 *   the offload mode's device threads share the cores with both, which slows wall time
 *   but not a thread's CPU time, which is what is compared.
 * - 256 KiB sender writes are 16 full records, so records arrive aligned and 256 KiB reads
 *   take whole records (TLS 1.2 decrypts straight into the caller's buffer; TLS 1.3
 *   without TLS_RX_EXPECT_NO_PAD, the socket's default, decrypts in place and copies).
 * - Every 4 KiB block of the stream carries its index (xor a per-run salt) in its first
 *   8 bytes and the complement in its last 8; the receiver checks both wherever they fall
 *   in what a recv returned: 4 bytes of compare per KiB, and lost, repeated, reordered or
 *   misplaced data fails the run, as does a short stream.
 * - ULPO_DEVICE=sw is forced: on a kernel with tls.ko the kernel itself would take both
 *   sockets, and neither mode would be ulpo's. The engine is set inline in both processes.
 * Known bias: on loopback the kernel's receive processing of a packet runs in the thread
 * that sent it, and an ACK the receiver sends lets the sender's queued segments go from
 * the receiver's context, so part of TCP's work lands in the inline receiver's sys time
 * (about a tenth of its CPU on the 2-core VM this was written on) and moves to the device
 * thread when offloaded; with a NIC it runs in softirq on the interrupt's CPU.
 *
 * Running it:
 *   build/bench/toe_bench                 1 GiB x 5 rounds x 2 modes x 2 versions: 20 runs,
 *                                         under a minute on 2 cores; progress on stderr
 *   toe_bench --check                     exit 1 unless the goal is met
 *   toe_bench --tls 1.2 --bytes 256M --rounds 3
 *   toe_bench --quick                     smoke test: 16 MiB, 1 round, a few seconds
 * Numbers from a machine where other work runs are noise. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <ulpo/engine.h>
#include <ulpo/ulpo.h>

#include "progress.h"

#define BUF_SIZE (256u << 10)		/* receiver's reads, sender's writes */
#define BLOCK 4096u			/* stamped unit of the stream */
#define DEF_BYTES (1ull << 30)
#define DEF_ROUNDS 5
#define QUICK_BYTES (16ull << 20)
#define MAX_ROUNDS 99
#define GOAL 0.30

enum mode { MODE_INLINE, MODE_OFFLOAD, NMODES };
static const char *const mode_name[NMODES] = { "inline", "offload" };

/* One message type both ways over the control socketpair (SOCK_SEQPACKET). */
struct ctl_msg {
	char op;	/* to sender: 'r'un, 'g'o, 'a'bort; to receiver: 'c'onnected,
			 * 'd'one, 'e'rror */
	int err;	/* 'e': errno */
	uint64_t bytes;
	uint64_t salt;
	double cpu;	/* 'd': sender's CPU seconds for the run */
	struct tls12_crypto_info_aes_gcm_128 info;
};

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("toe_bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static bool in_sender;

static void ctl_send(int ctl, const struct ctl_msg *m)
{
	if (send(ctl, m, sizeof(*m), MSG_NOSIGNAL) == (ssize_t)sizeof(*m))
		return;
	if (in_sender && (errno == EPIPE || errno == ECONNRESET))
		exit(1);	/* the receiver is gone and has said why */
	fail("control send: %s", strerror(errno));
}

/* 0 at the other side's end. */
static int ctl_recv(int ctl, struct ctl_msg *m)
{
	ssize_t n;

	do
		n = recv(ctl, m, sizeof(*m), 0);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(*m))
		fail("control recv: %s", n < 0 ? strerror(errno) : "short message");
	return 1;
}

static double tv_s(struct timeval t)
{
	return (double)t.tv_sec + (double)t.tv_usec * 1e-6;
}

static double cpu_s(const struct rusage *a, const struct rusage *b)
{
	return tv_s(b->ru_utime) - tv_s(a->ru_utime) + tv_s(b->ru_stime) - tv_s(a->ru_stime);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void engine_inline(void)
{
	struct ulpo_engine_config cfg;

	ulpo_engine_get_config(&cfg);
	cfg.mode = ULPO_ENGINE_INLINE;
	if (ulpo_engine_set_config(&cfg))
		fail("engine config");
}

static void stamp_at(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* ---- the sender (child process) ---- */

static int sender_run(int ctl, const struct sockaddr_in *addr, const struct ctl_msg *cmd,
		      uint8_t *buf)
{
	struct ctl_msg m = { .op = 'c' };
	struct rusage u0, u1;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (const void *)addr, sizeof(*addr)))
		return -errno;
	/* Refused by a ulpo without the policy API: the process-wide off still holds. */
	ulpo_setsockopt(fd, SOL_ULPO, ULPO_NO_OFFLOAD, &one, sizeof(one));
	if (ulpo_setsockopt(fd, SOL_TCP, TCP_ULP, "tls", 4) ||
	    ulpo_setsockopt(fd, SOL_TLS, TLS_TX, &cmd->info, sizeof(cmd->info))) {
		int e = errno;

		close(fd);
		return -e;
	}
	ctl_send(ctl, &m);
	if (!ctl_recv(ctl, &m))
		exit(0);
	if (m.op != 'g') {
		ulpo_close(fd);
		return 0;
	}
	getrusage(RUSAGE_SELF, &u0);
	for (uint64_t off = 0; off < cmd->bytes;) {
		size_t len = cmd->bytes - off < BUF_SIZE ? (size_t)(cmd->bytes - off) : BUF_SIZE;

		for (size_t b = 0; b < len / BLOCK; b++) {
			uint64_t v = (off / BLOCK + b) ^ cmd->salt;

			stamp_at(buf + b * BLOCK, v);
			stamp_at(buf + b * BLOCK + BLOCK - 8, ~v);
		}
		for (size_t done = 0; done < len;) {
			ssize_t n = ulpo_send(fd, buf + done, len - done, MSG_NOSIGNAL);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				int e = errno;

				ulpo_close(fd);
				return -e;
			}
			done += (size_t)n;
		}
		off += len;
	}
	if (ulpo_close(fd))	/* sends the records still queued, then the FIN */
		return -errno;
	getrusage(RUSAGE_SELF, &u1);
	m.op = 'd';
	m.cpu = cpu_s(&u0, &u1);
	ctl_send(ctl, &m);
	return 0;
}

static __attribute__((noreturn)) void sender_main(int ctl, const struct sockaddr_in *addr)
{
	static uint8_t buf[BUF_SIZE];
	struct ctl_msg cmd;

	in_sender = true;
	ulpo_offload_set(0);
	engine_inline();
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	while (ctl_recv(ctl, &cmd)) {
		int r = sender_run(ctl, addr, &cmd, buf);

		explicit_bzero(&cmd.info, sizeof(cmd.info));
		if (r < 0) {
			struct ctl_msg e = { .op = 'e', .err = -r };

			ctl_send(ctl, &e);
		}
	}
	exit(0);
}

/* ---- the receiver (this process's main thread) ---- */

struct bench {
	int listener, ctl;
	uint64_t bytes;
	uint8_t *buf;
};

/* What one run's receiver got. */
struct setup {
	int optout_err;		/* ULPO_NO_OFFLOAD refused: errno */
	int path;		/* ULPO_PATH_*, or -1: unreadable */
	int path_err;
	uint64_t toe_rx;	/* UlpoToeRx's increase over the set-up */
};

struct sample {
	double app, app_sys, proc, gbps, sleeps, sender;	/* per GB, except gbps */
};

/* Check the stamps that lie whole in what one recv returned, at stream offset pos. */
static void verify(const uint8_t *p, uint64_t pos, size_t n, uint64_t salt)
{
	uint64_t end = pos + n;

	for (uint64_t b = pos / BLOCK; b * BLOCK < end; b++) {
		uint64_t s = b * BLOCK, t = s + BLOCK - 8, v = b ^ salt, got;

		if (s >= pos && s + 8 <= end) {
			memcpy(&got, p + (s - pos), 8);
			if (got != v)
				fail("stream corrupt: block %llu starts with %016llx, expected %016llx",
				     (unsigned long long)b, (unsigned long long)(got ^ salt),
				     (unsigned long long)b);
		}
		if (t >= pos && t + 8 <= end) {
			memcpy(&got, p + (t - pos), 8);
			if (got != ~v)
				fail("stream corrupt: block %llu ends with %016llx, expected %016llx",
				     (unsigned long long)b, (unsigned long long)~(got ^ salt),
				     (unsigned long long)b);
		}
	}
}

static void keys(struct tls12_crypto_info_aes_gcm_128 *info, uint16_t version)
{
	memset(info, 0, sizeof(*info));
	info->info.version = version;
	info->info.cipher_type = TLS_CIPHER_AES_GCM_128;
	if (getrandom(info->key, sizeof(info->key), 0) != sizeof(info->key) ||
	    getrandom(info->iv, sizeof(info->iv), 0) != sizeof(info->iv) ||
	    getrandom(info->salt, sizeof(info->salt), 0) != sizeof(info->salt))
		fail("getrandom: %s", strerror(errno));
}

static bool path_ok(enum mode m, const struct setup *su)
{
	if (m == MODE_OFFLOAD)
		return su->path >= 0 && (su->path & ULPO_PATH_TOE_RX);
	if (su->path >= 0)
		return !(su->path & ULPO_PATH_TOE_RX);
	return su->toe_rx == 0;
}

static void path_str(char *s, size_t n, enum mode m, const struct setup *su)
{
	int k;

	if (su->path < 0)
		k = snprintf(s, n, "unknown (ULPO_OFFLOAD_PATH: %s; UlpoToeRx +%llu)",
			     strerror(su->path_err), (unsigned long long)su->toe_rx);
	else if (!su->path)
		k = snprintf(s, n, "sw");
	else
		k = snprintf(s, n, "%s%s%s", su->path & ULPO_PATH_TOE_TX ? "toe-tx" : "",
			     su->path == (ULPO_PATH_TOE_TX | ULPO_PATH_TOE_RX) ? "+" : "",
			     su->path & ULPO_PATH_TOE_RX ? "toe-rx" : "");
	if (k < 0 || (size_t)k >= n)
		return;
	if (m == MODE_INLINE && su->optout_err)
		snprintf(s + k, n - (size_t)k, ", ULPO_NO_OFFLOAD refused: %s",
			 strerror(su->optout_err));
}

/* One run: the sender connects, the receiver installs RX keys in the mode's way and reads
 * the path back; only then, if the path is the mode's, the sender is told to go. false:
 * the path was wrong and nothing was measured. */
static bool run(struct bench *b, enum mode m, uint16_t version, struct setup *ret_su,
		struct sample *ret)
{
	uint64_t st0[ULPO_STAT_MAX], st1[ULPO_STAT_MAX], got = 0;
	struct ctl_msg cmd = { .op = 'r', .bytes = b->bytes }, msg;
	struct rusage t0, t1, p0, p1;
	struct setup su = { .path = -1 };
	socklen_t len = sizeof(su.path);
	double w0, w1, gb;
	int fd, one = 1;

	keys(&cmd.info, version);
	if (getrandom(&cmd.salt, sizeof(cmd.salt), 0) != sizeof(cmd.salt))
		fail("getrandom: %s", strerror(errno));
	ctl_send(b->ctl, &cmd);
	/* Connected (or failed) first: its connection then waits in the backlog. */
	if (!ctl_recv(b->ctl, &msg))
		fail("the sender exited");
	if (msg.op == 'e')
		fail("sender set-up: %s", strerror(msg.err));
	fd = accept(b->listener, NULL, NULL);
	if (fd < 0)
		fail("accept: %s", strerror(errno));

	ulpo_stats_get(st0);
	if (m == MODE_INLINE) {
		if (ulpo_setsockopt(fd, SOL_ULPO, ULPO_NO_OFFLOAD, &one, sizeof(one)))
			su.optout_err = errno;
	}
	if (ulpo_setsockopt(fd, SOL_TCP, TCP_ULP, "tls", 4) ||
	    ulpo_setsockopt(fd, SOL_TLS, TLS_RX, &cmd.info, sizeof(cmd.info)))
		fail("%s TLS_RX: %s", mode_name[m], strerror(errno));
	explicit_bzero(&cmd.info, sizeof(cmd.info));
	if (ulpo_getsockopt(fd, SOL_ULPO, ULPO_OFFLOAD_PATH, &su.path, &len)) {
		su.path = -1;
		su.path_err = errno;
	} else if (len != sizeof(su.path)) {
		su.path = -1;
		su.path_err = EINVAL;
	}
	ulpo_stats_get(st1);
	su.toe_rx = st1[ULPO_STAT_TOE_RX] - st0[ULPO_STAT_TOE_RX];
	if (st1[ULPO_STAT_ULP_KERNEL] != st0[ULPO_STAT_ULP_KERNEL])
		fail("the kernel took the socket despite ULPO_DEVICE=sw");
	*ret_su = su;
	if (!path_ok(m, &su)) {
		msg = (struct ctl_msg){ .op = 'a' };
		ctl_send(b->ctl, &msg);
		ulpo_close(fd);
		return false;
	}

	msg = (struct ctl_msg){ .op = 'g' };
	getrusage(RUSAGE_SELF, &p0);
	getrusage(RUSAGE_THREAD, &t0);
	w0 = now_s();
	ctl_send(b->ctl, &msg);
	for (;;) {
		ssize_t n = ulpo_recv(fd, b->buf, BUF_SIZE, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("%s recv at byte %llu: %s", mode_name[m], (unsigned long long)got,
			     strerror(errno));
		if (n == 0)
			break;
		verify(b->buf, got, (size_t)n, cmd.salt);
		got += (size_t)n;
	}
	w1 = now_s();
	getrusage(RUSAGE_THREAD, &t1);
	getrusage(RUSAGE_SELF, &p1);
	if (got != b->bytes)
		fail("%s: stream ended after %llu of %llu bytes", mode_name[m],
		     (unsigned long long)got, (unsigned long long)b->bytes);
	if (!ctl_recv(b->ctl, &msg))
		fail("the sender exited");
	if (msg.op == 'e')
		fail("sender: %s", strerror(msg.err));
	ulpo_close(fd);

	gb = (double)got / 1e9;
	ret->app = cpu_s(&t0, &t1) / gb;
	ret->app_sys = (tv_s(t1.ru_stime) - tv_s(t0.ru_stime)) / gb;
	ret->proc = cpu_s(&p0, &p1) / gb;
	ret->gbps = gb / (w1 - w0);
	ret->sleeps = (double)(t1.ru_nvcsw - t0.ru_nvcsw) / gb;
	ret->sender = msg.cpu / gb;
	return true;
}

/* ---- driver and report ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const struct sample *s, int n, size_t field)
{
	double v[MAX_ROUNDS];

	for (int i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&s[i] + field);
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'G': case 'g': v <<= 10; /* fall through */
	case 'M': case 'm': v <<= 10; /* fall through */
	case 'K': case 'k': v <<= 10; end++; break;
	case 0: break;
	default: return -1;
	}
	if (*end)
		return -1;
	*ret = v;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: toe_bench [options]\n"
"The application thread's CPU per GB received over TLS (AES-128-GCM, loopback), the\n"
"connection offloaded whole vs opted out (inline), interleaved rounds, medians; the goal\n"
"is offload/inline <= %.2f. README in bench/toe_bench.c's header.\n"
"  -b, --bytes N     bytes per run, K/M/G suffixes, a multiple of 4K (default 1G)\n"
"  -r, --rounds N    rounds of each mode and version, 1..%d (default %d)\n"
"  -t, --tls LIST    TLS versions: 1.2, 1.3 or 1.2,1.3 (default)\n"
"  -q, --quick       smoke test: %llu MiB, 1 round (unless -b/-r)\n"
"  -c, --check       exit 1 unless the goal is met for every version\n"
"  -h, --help\n", GOAL, MAX_ROUNDS, DEF_ROUNDS, QUICK_BYTES >> 20);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "bytes", required_argument, NULL, 'b' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "tls", required_argument, NULL, 't' },
		{ "quick", no_argument, NULL, 'q' },
		{ "check", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct { const char *name; uint16_t version; } vers_all[] = {
		{ "1.2", TLS_1_2_VERSION }, { "1.3", TLS_1_3_VERSION },
	};
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t alen = sizeof(addr);
	bool quick = false, check = false, have_bytes = false, have_rounds = false;
	bool use[2] = { true, true }, all_met = true, unmeasured = false;
	uint64_t bytes = DEF_BYTES;
	int rounds = DEF_ROUNDS, opt, sv[2], status, nver = 0, vidx[2];
	struct sample (*smp)[NMODES][MAX_ROUNDS];
	struct setup first[2][NMODES];
	bool valid[2][NMODES] = { { false } }, seen[2][NMODES] = { { false } };
	int nsmp[2][NMODES] = { { 0 } };
	struct progress pg;
	struct bench b;
	pid_t child;
	char *end;

	while ((opt = getopt_long(argc, argv, "b:r:t:qch", lopts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			if (parse_size(optarg, &bytes) || !bytes || bytes % BLOCK)
				fail("--bytes: a positive multiple of 4K, e.g. 512M");
			have_bytes = true;
			break;
		case 'r':
			rounds = (int)strtol(optarg, &end, 10);
			if (*end || rounds < 1 || rounds > MAX_ROUNDS)
				fail("--rounds: 1..%d", MAX_ROUNDS);
			have_rounds = true;
			break;
		case 't':
			use[0] = use[1] = false;
			for (char *save = NULL, *s = strtok_r(optarg, ",", &save); s;
			     s = strtok_r(NULL, ",", &save)) {
				if (!strcmp(s, "1.2"))
					use[0] = true;
				else if (!strcmp(s, "1.3"))
					use[1] = true;
				else
					fail("--tls: 1.2, 1.3 or 1.2,1.3");
			}
			break;
		case 'q':
			quick = true;
			break;
		case 'c':
			check = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (quick && !have_bytes)
		bytes = QUICK_BYTES;
	if (quick && !have_rounds)
		rounds = 1;
	for (int v = 0; v < 2; v++)
		if (use[v])
			vidx[nver++] = v;

	/* Both processes: ulpo's own sw device, never the kernel's kTLS. */
	setenv("ULPO_DEVICE", "sw", 1);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	b.listener = socket(AF_INET, SOCK_STREAM, 0);
	if (b.listener < 0 || bind(b.listener, (void *)&addr, sizeof(addr)) ||
	    listen(b.listener, 4) || getsockname(b.listener, (void *)&addr, &alen))
		fail("listener: %s", strerror(errno));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv))
		fail("socketpair: %s", strerror(errno));
	/* Before this process uses ulpo: the child starts from a clean library. */
	fflush(NULL);
	child = fork();
	if (child < 0)
		fail("fork: %s", strerror(errno));
	if (child == 0) {
		close(sv[0]);
		close(b.listener);
		sender_main(sv[1], &addr);
	}
	close(sv[1]);
	b.ctl = sv[0];
	b.bytes = bytes;
	b.buf = aligned_alloc(4096, BUF_SIZE);
	smp = calloc(2, sizeof(*smp));
	if (!b.buf || !smp)
		fail("out of memory");
	memset(b.buf, 0, BUF_SIZE);
	engine_inline();

	printf("toe_bench: AES-128-GCM over loopback, %llu MiB per run, ulpo_recv into %u KiB, "
	       "median of %d round%s\n", (unsigned long long)(bytes >> 20), BUF_SIZE >> 10,
	       rounds, rounds > 1 ? "s" : "");
	printf("receiver: this process's main thread (app) and ulpo's threads; sender: a child "
	       "process, ulpo TX on the software path\n");
	printf("engine inline, ULPO_DEVICE=sw, process offload policy %s\n",
	       ulpo_offload_get() ? "on" : "off");
	fflush(stdout);

	progress_init(&pg, true, (size_t)rounds * (size_t)nver * NMODES, 0);
	for (int rd = 0; rd < rounds; rd++) {
		for (int i = 0; i < nver; i++) {
			int v = vidx[i];

			for (int m = 0; m < NMODES; m++) {
				size_t cell = (size_t)(i * NMODES + m);
				struct setup su;
				char what[64], ps[160];

				snprintf(what, sizeof(what), "tls%s %s", vers_all[v].name,
					 mode_name[m]);
				progress_show(&pg, cell + 1, (size_t)nver * NMODES, rd + 1, rounds,
					      what);
				if (seen[v][m] && !valid[v][m]) {
					progress_step(&pg);	/* known wrong path: skipped */
					continue;
				}
				if (run(&b, (enum mode)m, vers_all[v].version, &su,
					&smp[v][m][nsmp[v][m]]))
					nsmp[v][m]++;
				if (!seen[v][m]) {
					seen[v][m] = true;
					first[v][m] = su;
					valid[v][m] = path_ok((enum mode)m, &su);
					if (!valid[v][m]) {
						path_str(ps, sizeof(ps), (enum mode)m, &su);
						progress_clear(&pg);
						fprintf(stderr, "toe_bench: tls%s %s receiver got path "
							"%s, not what the mode means: its runs are "
							"skipped\n", vers_all[v].name, mode_name[m], ps);
					}
				} else if (su.path != first[v][m].path) {
					progress_clear(&pg);
					fail("tls%s %s: path changed between rounds (%d, then %d)",
					     vers_all[v].name, mode_name[m], first[v][m].path,
					     su.path);
				}
				progress_step(&pg);
			}
		}
	}
	progress_end(&pg);

	printf("\n%-7s %-8s %8s %6s %9s %7s %9s %11s  %s\n", "version", "mode", "app s/GB",
	       "sys", "proc s/GB", "GB/s", "sleeps/GB", "sender s/GB", "path");
	for (int i = 0; i < nver; i++) {
		int v = vidx[i];

		for (int m = 0; m < NMODES; m++) {
			char ps[160];
			int n = nsmp[v][m];
			const struct sample *s = smp[v][m];

			path_str(ps, sizeof(ps), (enum mode)m, &first[v][m]);
			if (!valid[v][m]) {
				printf("tls%-4s %-8s %8s %6s %9s %7s %9s %11s  %s: NOT %s\n",
				       vers_all[v].name, mode_name[m], "-", "-", "-", "-", "-", "-",
				       ps, m == MODE_OFFLOAD ? "OFFLOADED (no ULPO_PATH_TOE_RX)" :
				       "ON THE SOFTWARE PATH");
				continue;
			}
			printf("tls%-4s %-8s %8.3f %6.3f %9.3f %7.3f %9.0f %11.3f  %s\n",
			       vers_all[v].name, mode_name[m],
			       median(s, n, offsetof(struct sample, app)),
			       median(s, n, offsetof(struct sample, app_sys)),
			       median(s, n, offsetof(struct sample, proc)),
			       median(s, n, offsetof(struct sample, gbps)),
			       median(s, n, offsetof(struct sample, sleeps)),
			       median(s, n, offsetof(struct sample, sender)), ps);
		}
	}
	printf("\ngoal: offload app-thread CPU per GB <= %.2f x inline\n", GOAL);
	for (int i = 0; i < nver; i++) {
		int v = vidx[i];
		double in, off, ratio;

		if (!valid[v][MODE_INLINE] || !valid[v][MODE_OFFLOAD]) {
			unmeasured = true;
			printf("tls%-4s ratio not reported: the %s receiver did not get %s\n",
			       vers_all[v].name,
			       valid[v][MODE_OFFLOAD] ? "inline" : "offload",
			       valid[v][MODE_OFFLOAD] ? "the software path" : "ULPO_PATH_TOE_RX");
			continue;
		}
		in = median(smp[v][MODE_INLINE], nsmp[v][MODE_INLINE],
			    offsetof(struct sample, app));
		off = median(smp[v][MODE_OFFLOAD], nsmp[v][MODE_OFFLOAD],
			     offsetof(struct sample, app));
		ratio = off / in;
		if (!(ratio <= GOAL))
			all_met = false;
		printf("tls%-4s offload/inline %.3f  %s\n", vers_all[v].name, ratio,
		       ratio <= GOAL ? "met" : "NOT met");
	}
	if (!all_met)
		printf("result: goal NOT met\n");
	else if (unmeasured)
		printf("result: no verdict: a mode did not get its path (see above)\n");
	else
		printf("result: goal met\n");
	fflush(stdout);

	close(b.ctl);	/* the sender's end of input: it exits */
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("the sender did not exit cleanly");
	free(b.buf);
	free(smp);
	return check && (!all_met || unmeasured) ? 1 : 0;
}
