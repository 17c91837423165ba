/* epoll.c - the shim's epoll: a TLS member of a set is readable exactly when ulpo holds a
 * whole record or plaintext, and writable as the engine's backpressure allows, as poll()
 * has it (poll_loop in src/core/api.c).
 *
 * Each set made by epoll_create{,1} keeps its members (events, data) here and registers
 * them with the kernel under its own key (a serial and the fd), so a set without TLS
 * members costs one lookup per returned event. Whether a member is a ulpo socket is
 * decided at wait time, as TCP_ULP may come after EPOLL_CTL_ADD (shim_ulp_gen, bumped by
 * every install, makes a set look again). A set with TLS members waits as poll_loop:
 * ask each what ulpo holds (proto->poll), wait in the kernel (1 ms slices while one is
 * busy), turn kernel events into ulpo's (proto->poll_finish pulls a partial record's
 * bytes, so the kernel stops reporting them).
 *
 * Exact: level-triggered readiness of TLS members; EPOLLET (ulpo-held readiness is
 * reported on a new edge: after ADD/MOD, or with a kernel event for the fd in this
 * wait); EPOLLONESHOT (disarmed here and in the kernel after a report, until MOD);
 * epoll_data; plain members (the kernel's own semantics).
 * Approximate: a set in another set or in poll() is made readable in the kernel by a
 * private eventfd member (the "kick"), written when ulpo may hold readiness the kernel
 * cannot see: after a level-triggered TLS member was reported readable (one write, and
 * one more kernel call in the next wait), after ADD/MOD of a TLS member, when events
 * were left for lack of room, while a member that wants EPOLLOUT is busy. The outer
 * waiter may then wake for nothing, as it may for a partial record in the kernel. A
 * wait asks every TLS member of the set (O(TLS members), as poll()); close() of a member
 * looks in every set. A registration the kernel keeps after its fd was closed (a dup
 * holds the file) reports nothing. Sets not made here (raw syscall, across exec) and
 * dup()s of an epoll fd pass through untranslated. An EPOLLEXCLUSIVE TLS member keeps
 * the registration it was added with (the kernel refuses MOD). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include "core/sock.h"
#include "core/sys.h"
#include "preload/shim.h"

atomic_uint shim_ulp_gen;

#define POLL_BITS 0x27ffu		/* the poll(2) bits of an epoll mask */
#define SLICE_NS 1000000LL		/* completions on engine threads do not wake epoll */
#define KICK_KEY UINT64_MAX		/* fd -1: no member has it */
#define WAKE_KEY (UINT64_MAX - 1)	/* fd -2: neither */

struct member {
	int fd;
	uint32_t id;		/* new at ADD and MOD: the kernel's key is (id, fd) */
	uint32_t events;	/* as the program asked */
	epoll_data_t data;
	uint32_t kreg;		/* what the kernel has, for a TLS member */
	bool tls;		/* a ulpo socket with its own poll */
	bool armed;		/* EPOLLONESHOT: not reported since ADD/MOD */
	bool edge;		/* EPOLLET: ulpo-held readiness not reported since ADD/MOD */
	unsigned int ready_gen;	/* the socket's ready_gen when last looked at */
};

struct eset {
	int epfd;
	atomic_int refs;	/* the registry's, and one per call running on the set */
	struct eset *next;	/* registry list, under reg_lock */
	pthread_mutex_t lock;	/* everything below */
	struct member **tab;	/* open addressing on fd, at most half full */
	unsigned int cap, n;
	int *tls;		/* fds of the TLS members, sorted */
	unsigned int ntls, tls_cap;
	uint32_t next_id;
	unsigned int gen;	/* shim_ulp_gen when the members were last looked at */
	int kick;		/* eventfd, -1 until the first TLS member */
	bool kick_due;
	int wake;		/* eventfd offloaded members' devices write (ulpo_wakefd_get) */
};

/* Sets are few (one per thread, typically): a list, read-locked to find one. */
static pthread_rwlock_t reg_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct eset *sets;
static atomic_int nsets;

static struct member **find_slot(struct eset *s, int fd)
{
	unsigned int i = (unsigned int)fd & (s->cap - 1);

	while (s->tab[i] && s->tab[i]->fd != fd)
		i = (i + 1) & (s->cap - 1);
	return &s->tab[i];
}

static uint64_t key_of(uint32_t id, int fd)
{
	return (uint64_t)id << 32 | (uint32_t)fd;
}

static struct member *member_of(struct eset *s, uint64_t key)
{
	struct member *m = *find_slot(s, (int)(uint32_t)key);

	return m && m->id == (uint32_t)(key >> 32) ? m : NULL;
}

static int reserve(struct eset *s)
{
	struct member **old = s->tab;
	unsigned int oc = s->cap;

	if ((s->n + 1) * 2 <= s->cap)
		return 0;
	if (!(s->tab = calloc(oc * 2, sizeof(*old)))) {
		s->tab = old;
		return -ENOMEM;
	}
	s->cap = oc * 2;
	for (unsigned int i = 0; i < oc; i++)
		if (old[i])
			*find_slot(s, old[i]->fd) = old[i];
	free(old);
	return 0;
}

static unsigned int lower_bound(const int *a, unsigned int n, int fd)
{
	unsigned int lo = 0, hi = n;

	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;

		if (a[mid] < fd)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void member_free(struct eset *s, struct member *m)
{
	unsigned int mask = s->cap - 1, i = (unsigned int)(find_slot(s, m->fd) - s->tab), j = i;

	/* Backward-shift deletion: an entry moves into the hole unless its home lies
	 * cyclically in (hole, entry]. */
	s->tab[i] = NULL;
	while (s->tab[j = (j + 1) & mask]) {
		if (((j - ((unsigned int)s->tab[j]->fd & mask)) & mask) >= ((j - i) & mask)) {
			s->tab[i] = s->tab[j];
			s->tab[j] = NULL;
			i = j;
		}
	}
	s->n--;
	if (m->tls) {
		i = lower_bound(s->tls, s->ntls, m->fd);
		memmove(&s->tls[i], &s->tls[i + 1], (--s->ntls - i) * sizeof(int));
	}
	free(m);
}

static int kctl(struct eset *s, int op, int fd, uint32_t events, uint64_t key)
{
	struct epoll_event e = { .events = events, .data.u64 = key };

	return LIBC(epoll_ctl)(s->epfd, op, fd, &e);
}

/* The kernel's registration of a TLS member: never EPOLLONESHOT, as a kernel event
 * ulpo finds empty (a partial record) would disarm it; disarmed, a one-shot ERR/HUP
 * at most, which the translation drops. */
static uint32_t tls_kreg(const struct member *m, uint32_t kev)
{
	if (!m->armed)
		return EPOLLET | EPOLLONESHOT;
	return kev | (m->events & (EPOLLET | EPOLLWAKEUP | EPOLLEXCLUSIVE));
}

static void kmod(struct eset *s, struct member *m, uint32_t reg)
{
	if (reg != m->kreg && !(m->events & EPOLLEXCLUSIVE) &&
	    !kctl(s, EPOLL_CTL_MOD, m->fd, reg, key_of(m->id, m->fd)))
		m->kreg = reg;
}

/* Wake whoever waits on the set, here or on a set or poll() it is in. Edge-triggered
 * and never read: each write queues the set's ready item again (the counter would
 * need 2^64 writes to fill). */
static void kick(struct eset *s)
{
	uint64_t one = 1;

	if (s->kick >= 0)
		(void)!LIBC(write)(s->kick, &one, sizeof(one));
}

static void make_tls(struct eset *s, struct member *m)
{
	unsigned int i;

	if (s->ntls == s->tls_cap) {
		unsigned int c = s->tls_cap ? s->tls_cap * 2 : 16;
		int *p = realloc(s->tls, c * sizeof(*p));

		if (!p)
			return;		/* stays plain: the kernel's readiness */
		s->tls = p;
		s->tls_cap = c;
	}
	i = lower_bound(s->tls, s->ntls, m->fd);
	memmove(&s->tls[i + 1], &s->tls[i], (s->ntls++ - i) * sizeof(int));
	s->tls[i] = m->fd;
	m->tls = m->edge = true;
	m->kreg = m->events;
	kmod(s, m, tls_kreg(m, m->events & POLL_BITS));
	if (s->kick < 0 && (s->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) >= 0 &&
	    kctl(s, EPOLL_CTL_ADD, s->kick, EPOLLIN | EPOLLET, KICK_KEY)) {
		LIBC(close)(s->kick);
		s->kick = -1;
	}
	/* Level-triggered: a set nested in another (or in poll) is readable until a wait
	 * here drains it. */
	if (s->wake < 0 && (s->wake = ulpo_wakefd_get()) >= 0 &&
	    kctl(s, EPOLL_CTL_ADD, s->wake, EPOLLIN, WAKE_KEY)) {
		ulpo_wakefd_put(s->wake);
		s->wake = -1;
	}
}

/* fd's ulpo socket, referenced, if it has its own poll (the TLS ops); else NULL. */
static struct ulpo_sock *tls_sock(int fd)
{
	struct ulpo_sock *sk = PLAIN(fd) ? NULL : ulpo_sock_lookup(fd);

	if (sk && (!sk->proto->poll || atomic_load(&sk->closing))) {
		ulpo_sock_put(sk);
		sk = NULL;
	}
	return sk;
}

static bool is_tls(int fd)
{
	struct ulpo_sock *sk = tls_sock(fd);

	ulpo_sock_put(sk);
	return sk != NULL;
}

/* Members that became ulpo sockets since the set last looked. Acquire pairs with the
 * bump after the install: seeing the new count, the lookup sees the TLS ops. */
static void refresh(struct eset *s)
{
	unsigned int g = atomic_load_explicit(&shim_ulp_gen, memory_order_acquire);

	if (g == s->gen)
		return;
	s->gen = g;
	for (unsigned int i = 0; i < s->cap; i++)
		if (s->tab[i] && !s->tab[i]->tls && is_tls(s->tab[i]->fd))
			make_tls(s, s->tab[i]);
}

/* ---- sets ---- */

static struct eset *set_get(int epfd)
{
	struct eset *s;

	if (!atomic_load_explicit(&nsets, memory_order_relaxed))
		return NULL;
	pthread_rwlock_rdlock(&reg_lock);
	for (s = sets; s && s->epfd != epfd; s = s->next)
		;
	if (s)
		atomic_fetch_add(&s->refs, 1);
	pthread_rwlock_unlock(&reg_lock);
	return s;
}

static void set_put(struct eset *s)
{
	int e = errno;

	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (unsigned int i = 0; i < s->cap; i++)
		free(s->tab[i]);
	if (s->kick >= 0)
		LIBC(close)(s->kick);
	ulpo_wakefd_put(s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s->tab);
	free(s->tls);
	free(s);
	errno = e;
}

/* Take the set of epfd out of the registry; the caller puts the registry's reference. */
static struct eset *set_unlink(int epfd)
{
	struct eset *s, **p;

	for (p = &sets; *p && (*p)->epfd != epfd; p = &(*p)->next)
		;
	if (!(s = *p))
		return NULL;
	*p = s->next;
	atomic_fetch_sub(&nsets, 1);
	return s;
}

/* A set we cannot record works unmanaged: the kernel's semantics, data untouched. */
static int set_create(int epfd)
{
	struct eset *s, *old;

	if (epfd < 0 || !(s = calloc(1, sizeof(*s))))
		return epfd;
	if (!(s->tab = calloc(16, sizeof(*s->tab)))) {
		free(s);
		return epfd;
	}
	s->cap = 16;
	s->epfd = epfd;
	s->kick = -1;
	s->wake = -1;
	s->gen = atomic_load(&shim_ulp_gen);
	atomic_init(&s->refs, 1);
	pthread_mutex_init(&s->lock, NULL);
	pthread_rwlock_wrlock(&reg_lock);
	old = set_unlink(epfd);		/* its fd was closed behind our back */
	s->next = sets;
	sets = s;
	atomic_fetch_add(&nsets, 1);
	pthread_rwlock_unlock(&reg_lock);
	set_put(old);
	return epfd;
}

void shim_epoll_fd_closed(int fd)
{
	struct eset *s, *gone = NULL;

	if (!atomic_load_explicit(&nsets, memory_order_relaxed))
		return;
	/* The kernel drops a member's registration when its file's last fd closes. */
	pthread_rwlock_rdlock(&reg_lock);
	for (s = sets; s; s = s->next) {
		struct member *m;

		if (s->epfd == fd) {
			gone = s;
			continue;
		}
		pthread_mutex_lock(&s->lock);
		if (s->kick == fd)
			s->kick = -1;	/* closed under us: never write to its next owner */
		if (s->wake == fd)
			s->wake = -1;
		if ((m = *find_slot(s, fd)))
			member_free(s, m);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_rwlock_unlock(&reg_lock);
	if (gone) {
		pthread_rwlock_wrlock(&reg_lock);
		gone = set_unlink(fd);
		pthread_rwlock_unlock(&reg_lock);
		set_put(gone);
	}
}

SHIM_EXPORT int epoll_create(int size)
{
	return set_create(LIBC(epoll_create)(size));
}

SHIM_EXPORT int epoll_create1(int flags)
{
	return set_create(LIBC(epoll_create1)(flags));
}

static int set_ctl(struct eset *s, int op, int fd, struct epoll_event *uev)
{
	struct member *m, *nm, t;
	int r = -1;

	if (!uev && op != EPOLL_CTL_DEL)
		return LIBC(epoll_ctl)(s->epfd, op, fd, uev);	/* EFAULT */
	pthread_mutex_lock(&s->lock);
	m = *find_slot(s, fd);
	if (op == EPOLL_CTL_ADD) {
		if (reserve(s) || !(nm = calloc(1, sizeof(*nm)))) {
			errno = ENOMEM;
			goto out;
		}
		*nm = (struct member){ .fd = fd, .id = ++s->next_id, .events = uev->events,
				       .data = uev->data, .armed = true, .edge = true };
		if ((r = kctl(s, op, fd, nm->events, key_of(nm->id, fd)))) {
			free(nm);
			goto out;
		}
		if (m)
			member_free(s, m);	/* its fd was closed behind our back */
		*find_slot(s, fd) = nm;
		s->n++;
		if (is_tls(fd)) {
			make_tls(s, nm);
			kick(s);
		}
	} else if (op == EPOLL_CTL_MOD && m) {
		/* A new key: an event the kernel gave before the MOD is not this arming's. */
		t = *m;
		t.id = ++s->next_id;
		t.events = uev->events;
		t.data = uev->data;
		t.armed = t.edge = true;
		t.kreg = t.tls ? tls_kreg(&t, t.events & POLL_BITS) : t.events;
		if (!(r = kctl(s, op, fd, t.kreg, key_of(t.id, fd)))) {
			*m = t;
			if (m->tls)
				kick(s);
		}
	} else {
		r = LIBC(epoll_ctl)(s->epfd, op, fd, uev);
		if (m && op == EPOLL_CTL_DEL && (!r || errno == ENOENT))
			member_free(s, m);
	}
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}

SHIM_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	struct eset *s = set_get(epfd);
	int r;

	if (!s)
		return LIBC(epoll_ctl)(epfd, op, fd, event);
	r = set_ctl(s, op, fd, event);
	set_put(s);
	return r;
}

/* ---- waiting ---- */

struct slot {
	int fd;			/* first: bsearch compares it */
	uint32_t id, events, kev;
	uint32_t own;		/* ready in ulpo without the kernel */
	struct ulpo_sock *sk;
	bool busy, done;
	unsigned int gen;	/* the socket's ready_gen before it was asked */
};

static int cmp_fd(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static bool own_due(const struct member *m, uint32_t own)
{
	return own && m->armed && (m->edge || !(m->events & EPOLLET));
}

/* Report rev for m with the program's data: ONESHOT disarms, ET takes the edge. */
static int emit(struct eset *s, struct member *m, uint32_t rev, struct epoll_event *out)
{
	rev &= m->events | EPOLLERR | EPOLLHUP;
	if (!rev || !m->armed)
		return 0;
	out->events = rev;
	out->data = m->data;
	m->edge = false;
	if (m->events & EPOLLONESHOT) {
		m->armed = false;
		if (m->tls)
			kmod(s, m, tls_kreg(m, 0));
	} else if (m->tls && !(m->events & EPOLLET) && (rev & (EPOLLIN | EPOLLRDNORM))) {
		s->kick_due = true;	/* the program may leave part of it in ulpo */
	}
	return 1;
}

/* Kernel events to the program's, in place. A TLS member's readiness is ulpo's. */
static int translate(struct eset *s, struct epoll_event *ev, int n, struct slot *sl,
		     unsigned int nsl)
{
	int out = 0;

	for (int i = 0; i < n; i++) {
		struct member *m = member_of(s, ev[i].data.u64);
		uint32_t rev = ev[i].events;
		struct slot *x;
		struct ulpo_sock *sk;

		if (ev[i].data.u64 == WAKE_KEY) {
			uint64_t v;

			(void)!LIBC(read)(s->wake, &v, sizeof(v));	/* the loop asks again */
			continue;
		}
		if (!m)
			continue;	/* the kick, or a registration older than the member */
		if (m->tls && m->armed) {
			x = nsl ? bsearch(&m->fd, sl, nsl, sizeof(*sl), cmp_fd) : NULL;
			if (x && x->id != m->id)
				x = NULL;
			/* No slot: it became TLS while we waited, or ulpo is closing it. */
			sk = x ? x->sk : tls_sock(m->fd);
			if (sk)
				rev = (uint16_t)sk->proto->poll_finish(sk,
						(short)(m->events & POLL_BITS), (short)rev);
			if (x) {
				rev |= x->own;
				x->done = true;
			} else {
				ulpo_sock_put(sk);
			}
		}
		out += emit(s, m, rev, &ev[out]);
	}
	return out;
}

static int kwait(int epfd, struct epoll_event *ev, int max, long long ns,
		 const sigset_t *sigmask, bool ns_timeout)
{
	struct timespec t = { ns / 1000000000LL, ns % 1000000000LL };

	if (ns_timeout)
		return LIBC(epoll_pwait2)(epfd, ev, max, ns < 0 ? NULL : &t, sigmask);
	return LIBC(epoll_pwait)(epfd, ev, max, ns < 0 ? -1 : ns >= INT_MAX * 1000000LL ?
				 INT_MAX : (int)((ns + 999999) / 1000000), sigmask);
}

/* The TLS members and what ulpo holds for each. poll runs without the set's lock: it
 * takes the socket's locks and may send. Returns how many are due without the kernel. */
static unsigned int ask_ulpo(struct eset *s, struct slot *sl, unsigned int nsl, bool *busy)
{
	unsigned int i, due = 0;

	ulpo_poll_wake_ok = s->wake >= 0;
	ulpo_poll_wake_fd = s->wake;
	for (i = 0; i < nsl; i++) {
		struct slot *x = &sl[i];
		short kev = (short)x->events;

		if ((x->sk = tls_sock(x->fd))) {
			x->gen = atomic_load(&x->sk->ready_gen);
			x->own = (uint16_t)x->sk->proto->poll(x->sk, (short)x->events, &kev,
							       &x->busy);
		}
		x->kev = (uint16_t)kev;
	}
	ulpo_poll_wake_ok = false;
	ulpo_poll_wake_fd = -1;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < nsl; i++) {
		struct member *m = member_of(s, key_of(sl[i].id, sl[i].fd));

		if (m && sl[i].sk) {
			/* Readiness its device made since the last look is a new edge. */
			if (sl[i].gen != m->ready_gen) {
				m->ready_gen = sl[i].gen;
				m->edge = true;
			}
			kmod(s, m, tls_kreg(m, sl[i].kev));
			due += own_due(m, sl[i].own);
			*busy |= sl[i].busy;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return due;
}

/* poll_loop over a set: ulpo, the kernel, ulpo again. Repeat while the kernel woke us
 * for nothing the program can see, until the timeout (ns; -1: none). */
static int set_wait(struct eset *s, struct epoll_event *ev, int max, long long tmo,
		    const sigset_t *sigmask, bool ns_timeout)
{
	long long deadline = tmo > 0 ? ulpo_now_ns() + tmo : 0, left = tmo, kt;
	struct slot *sl = NULL;
	unsigned int nsl, nown, i;
	int n, out, e = errno;
	bool busy, leave;

	if (max <= 0)
		return kwait(s->epfd, ev, max, tmo, sigmask, ns_timeout);	/* EINVAL */
	do {
		pthread_mutex_lock(&s->lock);
		refresh(s);
		nsl = s->ntls;
		if (nsl && !(sl = malloc(nsl * sizeof(*sl)))) {
			pthread_mutex_unlock(&s->lock);
			errno = ENOMEM;
			return -1;
		}
		for (i = 0; i < nsl; i++) {
			struct member *m = *find_slot(s, s->tls[i]);

			sl[i] = (struct slot){ .fd = m->fd, .id = m->id,
					       .events = m->events & POLL_BITS };
		}
		pthread_mutex_unlock(&s->lock);
		busy = false;
		nown = nsl ? ask_ulpo(s, sl, nsl, &busy) : 0;
		kt = nown ? 0 : left;
		if (busy && (kt < 0 || kt > SLICE_NS))
			kt = SLICE_NS;
		/* The kernel always, if only for one event: it says whether epfd is still a set. */
		n = kwait(s->epfd, ev, nown < (unsigned int)max ? max - (int)nown : 1, kt, sigmask,
			  ns_timeout);
		out = n;
		if (n < 0)
			e = errno;
		pthread_mutex_lock(&s->lock);
		if (n >= 0) {
			refresh(s);	/* a member may have become TLS while we waited */
			out = translate(s, ev, n, sl, nsl);
			for (i = 0; i < nsl; i++) {
				struct member *m = member_of(s, key_of(sl[i].id, sl[i].fd));

				if (!m || sl[i].done || !own_due(m, sl[i].own))
					continue;
				if (out == max)
					s->kick_due = true;	/* for the next wait, here or above */
				else
					out += emit(s, m, sl[i].own, &ev[out]);
			}
		}
		leave = out || tmo == 0 || (tmo > 0 && (left = deadline - ulpo_now_ns()) <= 0);
		if (leave) {
			/* Completions may make these writable with no kernel event. */
			for (i = 0; i < nsl; i++)
				s->kick_due |= sl[i].busy && (sl[i].events & EPOLLOUT);
			if (s->kick_due)
				kick(s);
			s->kick_due = false;
		}
		pthread_mutex_unlock(&s->lock);
		for (i = 0; i < nsl; i++)
			ulpo_sock_put(sl[i].sk);
		free(sl);
		sl = NULL;
	} while (!leave);
	errno = e;
	return out;
}

static int wait_on(int epfd, struct epoll_event *ev, int max, long long tmo,
		   const sigset_t *sigmask, bool ns_timeout)
{
	struct eset *s = set_get(epfd);
	int r;

	if (!s)
		return kwait(epfd, ev, max, tmo, sigmask, ns_timeout);
	r = set_wait(s, ev, max, tmo, sigmask, ns_timeout);
	set_put(s);
	return r;
}

SHIM_EXPORT int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	return wait_on(epfd, events, maxevents, timeout < 0 ? -1 : timeout * 1000000LL, NULL,
		       false);
}

SHIM_EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
			    const sigset_t *sigmask)
{
	return wait_on(epfd, events, maxevents, timeout < 0 ? -1 : timeout * 1000000LL, sigmask,
		       false);
}

SHIM_EXPORT int epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
			     const struct timespec *timeout, const sigset_t *sigmask)
{
	long long ns = -1;

	if (timeout && (timeout->tv_sec < 0 || (unsigned long)timeout->tv_nsec >= 1000000000UL))
		return LIBC(epoll_pwait2)(epfd, events, maxevents, timeout, sigmask); /* EINVAL */
	if (timeout)
		ns = timeout->tv_sec >= LLONG_MAX / 2000000000LL ? LLONG_MAX / 2
			: timeout->tv_sec * 1000000000LL + timeout->tv_nsec;
	return wait_on(epfd, events, maxevents, ns, sigmask, true);
}
