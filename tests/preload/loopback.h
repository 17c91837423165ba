/* loopback.h - what the test programs written with plain libc calls share (ktls_prog.c and
 * test_fork.c here, tests/vm/device_prog.c): a connected TCP pair on 127.0.0.1, and
 * reading an exact length. No ulpo header: ktls_prog also runs, statically linked, on
 * the VM's kernel. */
#ifndef ULPO_TESTS_LOOPBACK_H
#define ULPO_TESTS_LOOPBACK_H

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* fds[0] connected to fds[1]; on failure `who: loopback connection: ...` and exit 2. */
static inline void loopback_pair(int fds[2], const char *who)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || fds[0] < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (void *)&a, &al) || connect(fds[0], (void *)&a, sizeof(a)) ||
	    (fds[1] = accept(l, NULL, NULL)) < 0) {
		fprintf(stderr, "%s: loopback connection: %s\n", who, strerror(errno));
		exit(2);
	}
	close(l);
}

/* Exactly len bytes with recv(): 0, or -1 at EOF or an error first. */
static inline int recv_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, (uint8_t *)buf + got, len - got, 0);

		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

#endif
