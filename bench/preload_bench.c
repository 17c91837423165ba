/* preload_bench.c - what the LD_PRELOAD shim costs a program that never uses TLS.
 *
 * Plaintext TCP over loopback (a writer and a reader thread, 16 KiB write()s and
 * read()s, the calls every socket program makes), run alternately in a child without
 * and with libulpo-preload.so, in interleaved rounds so that both see the same machine;
 * the medians and their ratio are printed. Goal (issue: unmodified programs): with the
 * shim >= 0.98x without it.
 *
 *   preload_bench --preload PATH [-r ROUNDS] [-s SECONDS]
 *
 * The child is this same program with --child: the shim is in its LD_PRELOAD or not. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 16384

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static volatile int stop;

static void *reader(void *arg)
{
	int fd = *(int *)arg;
	static char buf[CHUNK];
	long long *total = calloc(1, sizeof(*total));

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		*total += n;
	}
	return total;
}

/* One run: bytes per second through a loopback connection for `seconds`. */
static int child(double seconds)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), s;
	static char buf[CHUNK];
	pthread_t th;
	void *res;
	double t0;

	if (l < 0 || c < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (void *)&a, &al) || connect(c, (void *)&a, sizeof(a)) ||
	    (s = accept(l, NULL, NULL)) < 0) {
		perror("preload_bench: loopback connection");
		return 1;
	}
	memset(buf, 0x5a, sizeof(buf));
	pthread_create(&th, NULL, reader, &s);
	t0 = now();
	while (now() - t0 < seconds)
		for (int i = 0; i < 64; i++)
			if (write(c, buf, sizeof(buf)) != sizeof(buf)) {
				perror("preload_bench: write");
				return 1;
			}
	shutdown(c, SHUT_WR);
	pthread_join(th, &res);
	printf("%.6f\n", *(long long *)res / (now() - t0) / 1e9);
	return 0;
}

static double run(const char *self, const char *preload, double seconds)
{
	char arg[32], line[64] = "";
	int p[2];
	pid_t pid;
	FILE *f;

	snprintf(arg, sizeof(arg), "%g", seconds);
	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		if (preload)
			setenv("LD_PRELOAD", preload, 1);
		else
			unsetenv("LD_PRELOAD");
		execl(self, self, "--child", arg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	if (!f || !fgets(line, sizeof(line), f))
		line[0] = 0;
	if (f)
		fclose(f);
	waitpid(pid, NULL, 0);
	return line[0] ? atof(line) : -1;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *preload = NULL;
	double seconds = 1.0, plain[64], shim[64], mp, ms;
	int rounds = 7;

	if (argc == 3 && !strcmp(argv[1], "--child"))
		return child(atof(argv[2]));
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--preload") && i + 1 < argc)
			preload = argv[++i];
		else if (!strcmp(argv[i], "-r") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else {
			fprintf(stderr, "usage: preload_bench --preload PATH [-r ROUNDS] [-s SECONDS]\n");
			return 2;
		}
	}
	if (!preload || access(preload, R_OK) || rounds < 1 || rounds > 64 || seconds <= 0) {
		fprintf(stderr, "preload_bench: need a readable --preload, 1..64 rounds, seconds > 0\n");
		return 2;
	}
	printf("plaintext TCP loopback, 16 KiB write()/read(), %d rounds x %.1f s each way\n",
	       rounds, seconds);
	for (int r = 0; r < rounds; r++) {
		/* Alternate which goes first, so neither always follows the other. */
		if (r & 1) {
			shim[r] = run("/proc/self/exe", preload, seconds);
			plain[r] = run("/proc/self/exe", NULL, seconds);
		} else {
			plain[r] = run("/proc/self/exe", NULL, seconds);
			shim[r] = run("/proc/self/exe", preload, seconds);
		}
		if (plain[r] <= 0 || shim[r] <= 0) {
			fprintf(stderr, "preload_bench: a run failed\n");
			return 1;
		}
		fprintf(stderr, "\r  round %d/%d: without %.3f GB/s, with %.3f GB/s", r + 1, rounds,
			plain[r], shim[r]);
	}
	fprintf(stderr, "\n");
	qsort(plain, rounds, sizeof(double), cmp);
	qsort(shim, rounds, sizeof(double), cmp);
	mp = plain[rounds / 2];
	ms = shim[rounds / 2];
	printf("median GB/s: without shim %.3f, with shim %.3f, ratio %.3f (goal >= 0.98: %s)\n",
	       mp, ms, ms / mp, ms / mp >= 0.98 ? "met" : "not met");
	return 0;
}
