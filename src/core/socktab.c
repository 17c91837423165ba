/* socktab.c - the fd -> ulpo socket table.
 * Two levels of atomic pointers indexed by fd, so a lookup for an fd ulpo never saw is
 * two loads and no lock. Entries are published and unpublished under a striped mutex,
 * and a lookup takes its reference under the same stripe, so a socket cannot be freed
 * between the load and the reference count increment. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sock.h"

#define CHUNK_BITS 10
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define NCHUNKS 1024u			/* fds up to 2^20 */
#define NSTRIPES 64u

static _Atomic(struct ulpo_sock *) *_Atomic chunks[NCHUNKS];
/* A line each: neighbouring fds (a connection's two ends) must not share one. */
static struct {
	pthread_mutex_t m;
} __attribute__((aligned(64))) stripes[NSTRIPES] = {
	[0 ... NSTRIPES - 1] = { PTHREAD_MUTEX_INITIALIZER }
};

static _Atomic(struct ulpo_sock *) *slot(int fd, bool create)
{
	unsigned int c = (unsigned int)fd >> CHUNK_BITS;
	_Atomic(struct ulpo_sock *) *chunk;

	if (fd < 0 || c >= NCHUNKS)
		return NULL;
	chunk = atomic_load_explicit(&chunks[c], memory_order_acquire);
	if (!chunk && create) {
		_Atomic(struct ulpo_sock *) *fresh = calloc(CHUNK_SIZE, sizeof(*fresh));
		_Atomic(struct ulpo_sock *) *expected = NULL;

		if (!fresh)
			return NULL;
		/* Release pairs with the acquire above: a reader sees a zeroed chunk. */
		if (atomic_compare_exchange_strong_explicit(&chunks[c], &expected, fresh,
							    memory_order_acq_rel,
							    memory_order_acquire))
			chunk = fresh;
		else {
			free(fresh);
			chunk = expected;
		}
	}
	return chunk ? &chunk[(unsigned int)fd & (CHUNK_SIZE - 1)] : NULL;
}

static uint64_t fd_ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : (uint64_t)st.st_ino;
}

static void sock_free(struct ulpo_sock *sk)
{
	if (sk->proto->destroy)
		sk->proto->destroy(sk);
	pthread_mutex_destroy(&sk->tx_lock);
	pthread_mutex_destroy(&sk->rx_lock);
	pthread_mutex_destroy(&sk->fd_lock);
	free(sk->aliases);
	free(sk);
}

void ulpo_sock_put(struct ulpo_sock *sk)
{
	if (sk && atomic_fetch_sub_explicit(&sk->refs, 1, memory_order_acq_rel) == 1)
		sock_free(sk);
}

struct ulpo_sock *ulpo_sock_lookup(int fd)
{
	_Atomic(struct ulpo_sock *) *s = slot(fd, false);
	pthread_mutex_t *m;
	struct ulpo_sock *sk;

	/* Fast path for sockets ulpo does not handle: no lock. */
	if (!s || !atomic_load_explicit(s, memory_order_relaxed))
		return NULL;
	m = &stripes[(unsigned int)fd % NSTRIPES].m;
	pthread_mutex_lock(m);
	sk = atomic_load_explicit(s, memory_order_relaxed);
	if (sk)
		atomic_fetch_add_explicit(&sk->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(m);
	/* While ulpo_close() runs, the fd may already be closed and its number taken by a
	 * new socket: that one is not ours. */
	if (sk && atomic_load(&sk->closing) && fd_ino(fd) != sk->ino) {
		ulpo_sock_put(sk);
		return NULL;
	}
	return sk;
}

bool ulpo_sock_maybe(int fd)
{
	_Atomic(struct ulpo_sock *) *s = slot(fd, false);

	return s && atomic_load_explicit(s, memory_order_relaxed);
}

static struct ulpo_sock *sock_new(int fd, uint64_t ino)
{
	struct ulpo_sock *sk = calloc(1, sizeof(*sk));

	if (!sk)
		return NULL;
	sk->fd = fd;
	sk->ino = ino;
	atomic_init(&sk->refs, 1);
	sk->proto = &ulpo_tcp_proto;
	pthread_mutex_init(&sk->tx_lock, NULL);
	pthread_mutex_init(&sk->rx_lock, NULL);
	pthread_mutex_init(&sk->fd_lock, NULL);
	return sk;
}

int ulpo_sock_get_or_create(int fd, struct ulpo_sock **ret_sk)
{
	_Atomic(struct ulpo_sock *) *s;
	struct ulpo_sock *sk, *stale = NULL;
	pthread_mutex_t *m;
	uint64_t ino = fd_ino(fd);

	if (!ino)
		return -EBADF;
	s = slot(fd, true);
	if (!s)
		return fd < 0 ? -EBADF : -ENOMEM;
	m = &stripes[(unsigned int)fd % NSTRIPES].m;
	pthread_mutex_lock(m);
	sk = atomic_load_explicit(s, memory_order_relaxed);
	if (sk && sk->ino != ino) {
		/* The fd number was closed behind ulpo's back and reused. */
		stale = sk;
		sk = NULL;
	}
	if (!sk) {
		sk = sock_new(fd, ino);
		if (!sk) {
			pthread_mutex_unlock(m);
			return -ENOMEM;
		}
		atomic_store_explicit(s, sk, memory_order_release);
	}
	atomic_fetch_add_explicit(&sk->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(m);
	if (stale) {
		if (stale->proto->release)
			stale->proto->release(stale);
		ulpo_sock_put(stale);
	}
	*ret_sk = sk;
	return 0;
}

bool ulpo_sock_unhash(int fd, struct ulpo_sock *sk)
{
	_Atomic(struct ulpo_sock *) *s = slot(fd, false);
	pthread_mutex_t *m;
	bool removed = false;

	if (!s)
		return false;
	m = &stripes[(unsigned int)fd % NSTRIPES].m;
	pthread_mutex_lock(m);
	if (atomic_load_explicit(s, memory_order_relaxed) == sk) {
		atomic_store_explicit(s, NULL, memory_order_relaxed);
		removed = true;
	}
	pthread_mutex_unlock(m);
	return removed;
}

int ulpo_sock_alias(int oldfd, int newfd)
{
	struct ulpo_sock *sk = ulpo_sock_lookup(oldfd), *old;
	_Atomic(struct ulpo_sock *) *s;
	pthread_mutex_t *m;
	int *a;

	if (!sk)
		return 0;
	s = slot(newfd, true);
	if (!s) {
		ulpo_sock_put(sk);
		return -ENOMEM;
	}
	pthread_mutex_lock(&sk->fd_lock);
	a = realloc(sk->aliases, (sk->naliases + 1) * sizeof(*a));
	if (!a) {
		pthread_mutex_unlock(&sk->fd_lock);
		ulpo_sock_put(sk);
		return -ENOMEM;
	}
	a[sk->naliases++] = newfd;
	sk->aliases = a;
	pthread_mutex_unlock(&sk->fd_lock);
	m = &stripes[(unsigned int)newfd % NSTRIPES].m;
	pthread_mutex_lock(m);
	old = atomic_load_explicit(s, memory_order_relaxed);
	atomic_store_explicit(s, sk, memory_order_release);	/* our reference moves in */
	pthread_mutex_unlock(m);
	/* A socket left in newfd's slot was closed behind ulpo's back (dup2 closed it). */
	ulpo_sock_put(old);
	return 0;
}

void ulpo_sock_for_each(void (*fn)(struct ulpo_sock *sk, void *arg), void *arg)
{
	for (unsigned int c = 0; c < NCHUNKS; c++) {
		_Atomic(struct ulpo_sock *) *chunk =
			atomic_load_explicit(&chunks[c], memory_order_acquire);

		if (!chunk)
			continue;
		for (unsigned int i = 0; i < CHUNK_SIZE; i++) {
			int fd = (int)(c << CHUNK_BITS | i);
			struct ulpo_sock *sk;

			if (!atomic_load_explicit(&chunk[i], memory_order_relaxed))
				continue;
			sk = ulpo_sock_lookup(fd);
			if (!sk)
				continue;
			if (sk->fd == fd)	/* once per socket, not per alias */
				fn(sk, arg);
			ulpo_sock_put(sk);
		}
	}
}
