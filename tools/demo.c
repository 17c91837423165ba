/* demo.c - `ulpo demo`: the quick start. A real TLS server (openssl s_server, or
 * gnutls-serv --echo) runs as a child with a throwaway certificate; GnuTLS does the
 * handshake, ulpo carries N MiB each way, verified byte for byte; then the counters. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ulpo/ulpo.h>

#include "handshake.h"
#include "ulpo.h"
#include "xfer.h"

extern char **environ;

enum peer_kind { PEER_OPENSSL, PEER_GNUTLS };

/* The last bytes of the peer's stderr, for an error report. Not a file: gnutls-serv
 * --echo prints there every line it echoes, as much as the whole transfer. */
struct tail {
	int fd;
	bool started;
	pthread_t th;
	size_t len;
	char buf[4096];
};

struct demo {
	enum peer_kind peer;
	uint16_t version;
	const char *cipher;
	uint64_t bytes;
	bool tty;
	double t0;
	/* the child and its pipes (openssl: we are its stdin and stdout) */
	pid_t pid;
	int to_peer, from_peer;
	_Atomic uint64_t peer_out;	/* bytes the peer has written to its stdout */
	struct tail err;
};

/* For the signal handler: what to undo if the user interrupts. */
static char dir_path[64], cert_path[96], key_path[96];
static volatile pid_t child_pid;

static void cleanup_files(void)
{
	if (cert_path[0])
		unlink(cert_path);
	if (key_path[0])
		unlink(key_path);
	if (dir_path[0])
		rmdir(dir_path);
}

static void on_signal(int sig)
{
	/* Only async-signal-safe calls: kill, unlink, rmdir, _exit. */
	if (child_pid > 0)
		kill(child_pid, SIGTERM);
	cleanup_files();
	_exit(128 + sig);
}

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
		if (n && access(buf, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *openssl_suite(uint16_t version, const char *cipher)
{
	static const char *const names[][3] = {
		{ "aes-128-gcm", "TLS_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256" },
		{ "aes-256-gcm", "TLS_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384" },
		{ "chacha20-poly1305", "TLS_CHACHA20_POLY1305_SHA256",
		  "ECDHE-ECDSA-CHACHA20-POLY1305" },
		{ "aes-128-ccm", "TLS_AES_128_CCM_SHA256", "ECDHE-ECDSA-AES128-CCM" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i][0], cipher))
			return names[i][version == TLS_1_2_VERSION ? 2 : 1];
	return NULL;
}

static void *tail_main(void *arg)
{
	struct tail *t = arg;
	char chunk[sizeof(t->buf)];
	ssize_t n;

	while ((n = read(t->fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (t->len + (size_t)n > sizeof(t->buf)) {
			size_t drop = t->len + (size_t)n - sizeof(t->buf);

			memmove(t->buf, t->buf + drop, t->len - drop);
			t->len -= drop;
		}
		memcpy(t->buf + t->len, chunk, (size_t)n);
		t->len += (size_t)n;
	}
	return NULL;
}

/* Once the child is gone its stderr ends, and so does the thread. */
static void tail_stop(struct tail *t)
{
	if (t->started)
		pthread_join(t->th, NULL);
	t->started = false;
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

/* Start the peer on a port that was free a moment ago. */
static int spawn_peer(struct demo *d, int port, char *err, size_t errlen)
{
	char portarg[32], prio[256], *argv[24];
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, ep[2], argc = 0, r;
	posix_spawn_file_actions_t fa;

	if (pipe2(ep, O_CLOEXEC)) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	d->err.len = 0;
	d->err.fd = ep[0];
	posix_spawn_file_actions_init(&fa);
	if (d->peer == PEER_OPENSSL) {
		if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
			snprintf(err, errlen, "pipe: %s", strerror(errno));
			r = -1;
			goto out;
		}
		snprintf(portarg, sizeof(portarg), "127.0.0.1:%d", port);
		argv[argc++] = "openssl";
		argv[argc++] = "s_server";
		argv[argc++] = "-quiet";	/* raw data on stdio, stdin EOF ignored */
		argv[argc++] = "-naccept";
		argv[argc++] = "1";
		argv[argc++] = "-accept";
		argv[argc++] = portarg;
		argv[argc++] = "-cert";
		argv[argc++] = cert_path;
		argv[argc++] = "-key";
		argv[argc++] = key_path;
		if (d->version)
			argv[argc++] = d->version == TLS_1_2_VERSION ? "-tls1_2" : "-tls1_3";
		if (d->cipher) {
			const char *v12 = openssl_suite(TLS_1_2_VERSION, d->cipher);
			const char *v13 = openssl_suite(TLS_1_3_VERSION, d->cipher);

			argv[argc++] = "-cipher";
			argv[argc++] = (char *)v12;
			argv[argc++] = "-ciphersuites";
			argv[argc++] = (char *)v13;
		}
		posix_spawn_file_actions_adddup2(&fa, in[0], 0);
		posix_spawn_file_actions_adddup2(&fa, out[1], 1);
		posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
	} else {
		snprintf(portarg, sizeof(portarg), "%d", port);
		argv[argc++] = "gnutls-serv";
		argv[argc++] = "--echo";
		argv[argc++] = "--crlf";	/* echo bytes as they are */
		argv[argc++] = "--quiet";
		argv[argc++] = "--port";
		argv[argc++] = portarg;
		argv[argc++] = "--x509certfile";
		argv[argc++] = cert_path;
		argv[argc++] = "--x509keyfile";
		argv[argc++] = key_path;
		if (d->version || d->cipher) {
			snprintf(prio, sizeof(prio), "NORMAL:-VERS-ALL:%s%s%s",
				 d->version == TLS_1_2_VERSION ? "+VERS-TLS1.2"
				 : d->version == TLS_1_3_VERSION ? "+VERS-TLS1.3"
				 : "+VERS-TLS1.3:+VERS-TLS1.2",
				 d->cipher ? ":-CIPHER-ALL:+" : "", d->cipher ? d->cipher : "");
			for (char *p = prio; *p; p++)	/* "aes-128-gcm" -> "AES-128-GCM" */
				if (*p >= 'a' && *p <= 'z')
					*p = (char)(*p - 'a' + 'A');
			argv[argc++] = "--priority";
			argv[argc++] = prio;
		}
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
	}
	argv[argc] = NULL;
	r = posix_spawnp(&d->pid, argv[0], &fa, NULL, argv, environ);
	if (r) {
		snprintf(err, errlen, "starting %s: %s", argv[0], strerror(r));
		r = -1;
		goto out;
	}
	child_pid = d->pid;
	if (pthread_create(&d->err.th, NULL, tail_main, &d->err) == 0)
		d->err.started = true;
	if (d->peer == PEER_OPENSSL) {
		d->to_peer = in[1];
		d->from_peer = out[0];
		in[1] = out[0] = -1;
	}
	r = 0;
out:
	posix_spawn_file_actions_destroy(&fa);
	close(ep[1]);
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	return r;
}

static bool child_alive(struct demo *d)
{
	int st;

	if (d->pid <= 0)
		return false;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		d->pid = 0;
		child_pid = 0;
		return false;
	}
	return true;
}

static void stop_child(struct demo *d, double wait_s)
{
	double end = now_s() + wait_s;

	while (child_alive(d) && now_s() < end)
		usleep(20 * 1000);
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
		child_pid = 0;
	}
	tail_stop(&d->err);
}

/* Start the peer and connect to it; a port taken in between costs a retry. */
static int start_and_connect(struct demo *d, char *err, size_t errlen)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		int port = tcp_free_port();
		double end = now_s() + 10;

		if (port < 0 || spawn_peer(d, port, err, errlen))
			return -1;
		while (child_alive(d) && now_s() < end) {
			int fd = tcp_connect_retry(port, 100, err, errlen);

			if (fd >= 0)
				return fd;
		}
		stop_child(d, 0);
		snprintf(err, errlen, "the peer did not start listening");
	}
	return -1;
}

/* ---- pipe threads for openssl s_server: its stdin is ours to fill, its stdout ours
 * to check, so data goes both ways without an echo server. ---- */

struct pipe_job {
	struct demo *d;
	uint64_t seed;
	int result;
	char err[200];
};

static void *gen_main(void *arg)
{
	struct pipe_job *j = arg;

	j->result = pipe_gen(j->d->to_peer, j->seed, j->d->bytes, false, false, j->err,
			     sizeof(j->err));
	return NULL;
}

static void *check_main(void *arg)
{
	struct pipe_job *j = arg;

	j->result = pipe_check(j->d->from_peer, j->seed, j->d->bytes, false, &j->d->peer_out,
			       j->err, sizeof(j->err));
	return NULL;
}

static void progress(const struct xfer *x, void *arg)
{
	struct demo *d = arg;
	double t = now_s() - d->t0, mib = 1 << 20;
	uint64_t rx = atomic_load(&x->received);
	uint64_t tx = d->peer == PEER_OPENSSL ? atomic_load(&d->peer_out) : atomic_load(&x->sent);

	if (!d->tty)
		return;
	printf("\r  ulpo sent %6.0f MiB (peer got %6.0f), ulpo received %6.0f MiB   %6.0f MiB/s ",
	       atomic_load(&x->sent) / mib, tx / mib, rx / mib, t > 0 ? (tx + rx) / mib / t : 0);
	fflush(stdout);
}

static void print_counters(void)
{
	uint64_t v[ULPO_STAT_MAX];

	ulpo_stats_get(v);
	printf("counters (as in /proc/net/tls_stat, then ulpo's own):\n");
	for (int i = 0; i < ULPO_STAT_MAX; i++)
		printf("  %-24s %llu\n", ulpo_stat_name(i), (unsigned long long)v[i]);
}

static void show_log(const struct tail *t)
{
	const char *p = t->buf, *end = t->buf + t->len;

	if (t->len)
		fprintf(stderr, "the peer's last words:\n");
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		int n = (int)((nl ? nl : end) - p);

		fprintf(stderr, "  | %.*s\n", n, p);
		p += n + 1;
	}
}

static int demo_usage(FILE *f)
{
	fprintf(f, "usage: ulpo demo [--mib N] [--peer openssl|gnutls] [--tls 1.2|1.3]\n"
		   "         [--cipher aes-128-gcm|aes-256-gcm|chacha20-poly1305|aes-128-ccm]\n"
		   "Starts a TLS server (openssl s_server, or gnutls-serv --echo), handshakes\n"
		   "with GnuTLS, moves N MiB (default 256) each way through ulpo, checks every\n"
		   "byte, and prints the throughput and ulpo's counters.\n");
	return f == stdout ? 0 : 2;
}

int ulpo_cmd_demo(int argc, char **argv)
{
	struct demo d = { .bytes = 256ull << 20, .to_peer = -1, .from_peer = -1,
			  .tty = isatty(1), .err = { .fd = -1 } };
	struct hs_config cfg = { .role = HS_CLIENT };
	struct pipe_job gen = { .d = &d, .seed = 2 }, chk = { .d = &d, .seed = 1 };
	struct xfer x = { 0 };
	pthread_t gen_th, chk_th;
	bool have_peer = false, threads = false;
	struct hs_result hs;
	char err[400];
	double t;
	int fd = -1, ret = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			return demo_usage(stdout);
		if (!v)
			return demo_usage(stderr);
		i++;
		if (!strcmp(a, "--mib") && strtoull(v, NULL, 10) > 0)
			d.bytes = strtoull(v, NULL, 10) << 20;
		else if (!strcmp(a, "--peer") && (!strcmp(v, "openssl") || !strcmp(v, "gnutls"))) {
			d.peer = !strcmp(v, "openssl") ? PEER_OPENSSL : PEER_GNUTLS;
			have_peer = true;
		} else if (!strcmp(a, "--tls") && (!strcmp(v, "1.2") || !strcmp(v, "1.3")))
			d.version = !strcmp(v, "1.2") ? TLS_1_2_VERSION : TLS_1_3_VERSION;
		else if (!strcmp(a, "--cipher") && hs_cipher_id(v))
			d.cipher = v;
		else
			return demo_usage(stderr);
	}
	if (!have_peer)
		d.peer = in_path("openssl") || !in_path("gnutls-serv") ? PEER_OPENSSL : PEER_GNUTLS;
	if (!in_path(d.peer == PEER_OPENSSL ? "openssl" : "gnutls-serv")) {
		fprintf(stderr, "ulpo demo: no '%s' in PATH. The demo needs a real TLS peer: "
				"install openssl (Debian package 'openssl') or gnutls-serv "
				"(package 'gnutls-bin').\n",
			d.peer == PEER_OPENSSL ? "openssl" : "gnutls-serv");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	snprintf(dir_path, sizeof(dir_path), "/tmp/ulpo-demo.XXXXXX");
	if (!mkdtemp(dir_path)) {
		fprintf(stderr, "ulpo demo: mkdtemp: %s\n", strerror(errno));
		dir_path[0] = 0;
		return 1;
	}
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir_path);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir_path);
	if (hs_write_cert(cert_path, key_path, err, sizeof(err)))
		goto fail;

	fd = start_and_connect(&d, err, sizeof(err));
	if (fd < 0)
		goto fail;
	printf("peer: %s (pid %d), throwaway certificate in %s\n",
	       d.peer == PEER_OPENSSL ? "openssl s_server" : "gnutls-serv --echo", (int)d.pid,
	       dir_path);
	cfg.version = d.version;
	cfg.cipher = d.cipher;
	if (hs_run(fd, &cfg, &hs, err, sizeof(err)))
		goto fail;
	printf("handshake by GnuTLS: %s\n"
	       "keys installed: TCP_ULP \"tls\", TLS_TX and TLS_RX (%s, %s); ulpo has the socket\n",
	       hs.suite, hs.version == TLS_1_3_VERSION ? "TLS 1.3" : "TLS 1.2",
	       hs_cipher_name(hs.cipher));

	x.fd = fd;
	x.send_len = x.recv_len = d.bytes;
	x.send_seed = chk.seed;	/* what ulpo sends, the peer prints, we check */
	x.recv_seed = d.peer == PEER_OPENSSL ? gen.seed : chk.seed;	/* echo: our own */
	x.text = d.peer == PEER_GNUTLS;	/* gnutls-serv echoes lines of text */
	if (d.peer == PEER_OPENSSL) {
		if (pthread_create(&gen_th, NULL, gen_main, &gen)) {
			snprintf(err, sizeof(err), "pthread_create failed");
			goto fail;
		}
		if (pthread_create(&chk_th, NULL, check_main, &chk)) {
			snprintf(err, sizeof(err), "pthread_create failed");
			pthread_cancel(gen_th);
			pthread_join(gen_th, NULL);
			goto fail;
		}
		threads = true;
	}
	printf("transferring %llu MiB each way through ulpo, checking every byte...\n",
	       (unsigned long long)(d.bytes >> 20));
	fflush(stdout);
	d.t0 = now_s();
	if (xfer_run(&x, progress, &d)) {
		snprintf(err, sizeof(err), "transfer: %s", x.err);
		goto fail;
	}
	if (xfer_close(&x, 5000)) {
		snprintf(err, sizeof(err), "closing: %s", x.err);
		goto fail;
	}
	if (threads) {
		/* s_server exits after its one connection; its stdout then ends. */
		stop_child(&d, 10);
		pthread_join(gen_th, NULL);
		pthread_join(chk_th, NULL);
		threads = false;
		if (chk.result) {
			snprintf(err, sizeof(err), "what the peer received: %s", chk.err);
			goto fail;
		}
	}
	t = now_s() - d.t0;
	if (d.tty)
		printf("\n");
	printf("ok: %llu MiB each way, byte-exact, in %.2f s: %.0f MiB/s each way, %.0f MiB/s "
	       "total\n",
	       (unsigned long long)(d.bytes >> 20), t, (double)(d.bytes >> 20) / t,
	       2.0 * (double)(d.bytes >> 20) / t);
	ret = 0;
fail:
	if (ret) {
		if (d.tty && d.t0 > 0)
			printf("\n");
		fprintf(stderr, "ulpo demo: %s\n", err);
	}
	if (fd >= 0)
		ulpo_close(fd);
	stop_child(&d, 0);	/* s_server has exited by now; gnutls-serv never does */
	if (threads) {
		pthread_join(gen_th, NULL);
		pthread_join(chk_th, NULL);
	}
	if (d.to_peer >= 0)
		close(d.to_peer);
	if (d.from_peer >= 0)
		close(d.from_peer);
	if (ret)
		show_log(&d.err);
	else
		print_counters();
	cleanup_files();
	return ret;
}
