/* poll.c - the shim's readiness calls without epoll: poll, ppoll and select/pselect
 * (as poll sets), so that a ulpo socket is readable only when it holds a whole record
 * or plaintext, and writable as the engine's backpressure allows (ulpo_ppoll). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ulpo/ulpo.h>

#include "core/sock.h"
#include "core/sys.h"
#include "preload/shim.h"

static bool any_ulpo(const struct pollfd *fds, nfds_t nfds)
{
	for (nfds_t i = 0; i < nfds; i++)
		if (fds[i].fd >= 0 && !PLAIN(fds[i].fd))
			return true;
	return false;
}

SHIM_EXPORT int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	if (!any_ulpo(fds, nfds))
		return LIBC(poll)(fds, nfds, timeout);
	return ulpo_poll(fds, nfds, timeout);
}

SHIM_EXPORT int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		      const sigset_t *sigmask)
{
	if (!any_ulpo(fds, nfds))
		return LIBC(ppoll)(fds, nfds, timeout, sigmask);
	return ulpo_ppoll(fds, nfds, timeout, sigmask);
}

extern void __chk_fail(void) __attribute__((noreturn));

SHIM_EXPORT int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < nfds)
		__chk_fail();
	return poll(fds, nfds, timeout);
}

SHIM_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
			    const sigset_t *sigmask, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < nfds)
		__chk_fail();
	return ppoll(fds, nfds, timeout, sigmask);
}

/* select as the kernel defines it on top of poll (fs/select.c): readable is
 * POLLIN|POLLRDNORM|POLLRDBAND|POLLHUP|POLLERR, writable POLLOUT|POLLWRNORM|POLLWRBAND|
 * POLLERR, exceptional POLLPRI; an fd that is not open is EBADF. */
#define SEL_IN (POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR)
#define SEL_OUT (POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR)

static bool sets_have_ulpo(int nfds, fd_set *r, fd_set *w, fd_set *x)
{
	for (int fd = 0; fd < nfds; fd++)
		if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (x && FD_ISSET(fd, x))) &&
		    !PLAIN(fd))
			return true;
	return false;
}

static int select_as_poll(int nfds, fd_set *r, fd_set *w, fd_set *x,
			  const struct timespec *timeout, const sigset_t *sigmask)
{
	struct pollfd *p;
	int n = 0, ready = 0, rc;

	if (nfds < 0 || nfds > FD_SETSIZE) {
		errno = EINVAL;
		return -1;
	}
	p = calloc((size_t)nfds + 1, sizeof(*p));
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	for (int fd = 0; fd < nfds; fd++) {
		short ev = 0;

		if (r && FD_ISSET(fd, r))
			ev |= POLLIN;
		if (w && FD_ISSET(fd, w))
			ev |= POLLOUT;
		if (x && FD_ISSET(fd, x))
			ev |= POLLPRI;
		if (ev) {
			p[n].fd = fd;
			p[n].events = ev;
			n++;
		}
	}
	rc = ulpo_ppoll(p, (nfds_t)n, timeout, sigmask);
	if (rc < 0) {
		free(p);
		return -1;
	}
	for (int i = 0; i < n; i++)
		if (p[i].revents & POLLNVAL) {
			free(p);
			errno = EBADF;
			return -1;
		}
	if (r)
		FD_ZERO(r);
	if (w)
		FD_ZERO(w);
	if (x)
		FD_ZERO(x);
	for (int i = 0; i < n; i++) {
		short rev = p[i].revents;

		if (r && (p[i].events & POLLIN) && (rev & SEL_IN)) {
			FD_SET(p[i].fd, r);
			ready++;
		}
		if (w && (p[i].events & POLLOUT) && (rev & SEL_OUT)) {
			FD_SET(p[i].fd, w);
			ready++;
		}
		if (x && (p[i].events & POLLPRI) && (rev & POLLPRI)) {
			FD_SET(p[i].fd, x);
			ready++;
		}
	}
	free(p);
	return ready;
}

SHIM_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *x, struct timeval *timeout)
{
	struct timespec ts;
	long long start, left;
	int rc, e;

	if (!sets_have_ulpo(nfds, r, w, x))
		return LIBC(select)(nfds, r, w, x, timeout);
	if (timeout && (timeout->tv_sec < 0 || timeout->tv_usec < 0)) {
		errno = EINVAL;
		return -1;
	}
	if (timeout) {
		ts.tv_sec = timeout->tv_sec + timeout->tv_usec / 1000000;
		ts.tv_nsec = (timeout->tv_usec % 1000000) * 1000;
	}
	start = ulpo_now_ns();
	rc = select_as_poll(nfds, r, w, x, timeout ? &ts : NULL, NULL);
	e = errno;
	if (timeout) {
		/* Linux writes the time left back (select(2), "Linux updates timeout"). */
		left = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec - (ulpo_now_ns() - start);
		if (left < 0)
			left = 0;
		timeout->tv_sec = left / 1000000000LL;
		timeout->tv_usec = (left % 1000000000LL) / 1000;
	}
	errno = e;
	return rc;
}

SHIM_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *x,
			const struct timespec *timeout, const sigset_t *sigmask)
{
	if (!sets_have_ulpo(nfds, r, w, x))
		return LIBC(pselect)(nfds, r, w, x, timeout, sigmask);
	return select_as_poll(nfds, r, w, x, timeout, sigmask);
}
