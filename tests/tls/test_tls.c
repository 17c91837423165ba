/* test_tls.c - kTLS semantics over loopback, for every (version, cipher) the kernel
 * accepts: round trips, record boundaries on the wire, control records, peek, waitall,
 * low-water mark, non-blocking, rekey, getsockopt, poll, sendfile and the kernel's errno
 * for each error case (docs/ktls-semantics.md). */
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <pthread.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

#include "record_codec.h"

int t_failed_checks;
const char *t_current;
static uint64_t g_seed;

/* ---- helpers ---- */

/* Read raw records from a plain fd until `want` records were decoded. */
static int wire_records(int fd, struct codec *cd, int want, uint8_t *types, size_t *lens,
			uint8_t *data, size_t data_cap)
{
	static uint8_t rec[20000];
	size_t used = 0;

	for (int i = 0; i < want; i++) {
		uint8_t type;
		long n;
		size_t wl;

		if (read_full(fd, rec, 5) != 5)
			return -1;
		wl = (size_t)rec[3] << 8 | rec[4];
		if (read_full(fd, rec + 5, wl) != (ssize_t)wl)
			return -1;
		if (used + wl > data_cap)
			return -1;
		n = codec_open(cd, rec, &type, data + used);
		if (n < 0)
			return -2;
		types[i] = type;
		lens[i] = (size_t)n;
		used += (size_t)n;
	}
	return 0;
}

static void nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* ---- tests run per variant ---- */

static void t_roundtrip_random(const struct variant *v, uint64_t seed)
{
	int c, s;
	uint64_t rng = seed;
	size_t cap = 80000;
	uint8_t *out = malloc(cap), *in = malloc(cap);

	CHECK(tls_pair(v, seed, &c, &s, true) == 0);
	for (int round = 0; round < 40; round++) {
		int from = round & 1 ? s : c, to = round & 1 ? c : s;
		size_t len = t_rand(&rng) % 3 == 0 ? t_rand(&rng) % 40 : t_rand(&rng) % 70000;
		struct iovec iov[8];
		int n = 1 + (int)(t_rand(&rng) % 8), flags = 0;
		size_t off = 0, got = 0;

		t_fill(&rng, out, len);
		for (int i = 0; i < n; i++) {
			size_t l = i == n - 1 ? len - off : (len - off) * (t_rand(&rng) % 100) / 100;

			iov[i].iov_base = out + off;
			iov[i].iov_len = l;
			off += l;
		}
		/* Sometimes split the send in two with MSG_MORE on the first part. */
		if (n > 1 && t_rand(&rng) % 3 == 0) {
			struct msghdr m1 = { .msg_iov = iov, .msg_iovlen = 1 };
			size_t l0 = iov[0].iov_len;

			CHECK_EQ(U(sendmsg)(from, &m1, MSG_MORE), l0);
			struct msghdr m2 = { .msg_iov = iov + 1, .msg_iovlen = (size_t)n - 1 };
			CHECK_EQ(U(sendmsg)(from, &m2, flags), len - l0);
		} else {
			struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };

			CHECK_EQ(U(sendmsg)(from, &m, flags), len);
		}
		while (got < len) {
			size_t want = 1 + t_rand(&rng) % 30000;
			struct iovec riov[3];
			struct msghdr rm = { .msg_iov = riov, .msg_iovlen = 3 };
			ssize_t r;

			if (want > len - got + 100)
				want = len - got + 100;
			riov[0].iov_base = in + got;
			riov[0].iov_len = want / 3;
			riov[1].iov_base = in + got + want / 3;
			riov[1].iov_len = want / 3;
			riov[2].iov_base = in + got + 2 * (want / 3);
			riov[2].iov_len = want - 2 * (want / 3);
			r = U(recvmsg)(to, &rm, 0);
			CHECK(r > 0);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		CHECK_EQ(got, len);
		CHECK(memcmp(in, out, len) == 0);
	}
	close_pair(c, s);
	free(out);
	free(in);
}

static void t_wire_boundaries(const struct variant *v, uint64_t seed)
{
	struct keys k;
	struct codec cd;
	int c, s;
	uint8_t buf[40000], got[60000], types[8];
	size_t lens[8];
	uint64_t rng = seed;

	keys_make(v, seed, &k);
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(c) == 0);
	CHECK(U(setsockopt)(c, SOL_TLS, TLS_TX, k.info, k.len) == 0);
	CHECK(codec_init(&cd, v, &k) == 0);
	t_fill(&rng, buf, sizeof(buf));

	/* Records are filled to 2^14 and the last one closes at the end of the send. */
	CHECK_EQ(U(send)(c, buf, 40000, 0), 40000);
	CHECK(wire_records(s, &cd, 3, types, lens, got, sizeof(got)) == 0);
	CHECK_EQ(lens[0], 16384);
	CHECK_EQ(lens[1], 16384);
	CHECK_EQ(lens[2], 40000 - 2 * 16384);
	CHECK_EQ(types[0], 23);
	CHECK(memcmp(got, buf, 40000) == 0);

	/* MSG_MORE keeps the record open; MSG_EOR alone behaves as no flag. */
	CHECK_EQ(U(send)(c, buf, 100, MSG_MORE), 100);
	CHECK_EQ(U(send)(c, buf + 100, 100, MSG_MORE), 100);
#ifdef TEST_KERNEL_61
	/* 6.1 refuses MSG_EOR (EOPNOTSUPP); it is accepted from 6.5 on. */
	CHECK_ERR(U(send)(c, buf + 200, 50, MSG_EOR), EOPNOTSUPP);
	CHECK_EQ(U(send)(c, buf + 200, 50, 0), 50);
#else
	CHECK_EQ(U(send)(c, buf + 200, 50, MSG_EOR), 50);
#endif
	CHECK(wire_records(s, &cd, 1, types, lens, got, sizeof(got)) == 0);
	CHECK_EQ(lens[0], 250);
	CHECK(memcmp(got, buf, 250) == 0);

	/* A control record closes the open data record first, never merges with it. */
	CHECK_EQ(U(send)(c, buf, 10, MSG_MORE), 10);
	CHECK_EQ(send_typed(c, buf + 10, 7, 0, 21), 7);
	CHECK(wire_records(s, &cd, 2, types, lens, got, sizeof(got)) == 0);
	CHECK_EQ(types[0], 23);
	CHECK_EQ(lens[0], 10);
	CHECK_EQ(types[1], 21);
	CHECK_EQ(lens[1], 7);
	CHECK(memcmp(got + 10, buf + 10, 7) == 0);

	/* A zero-length send neither makes a record nor flushes an open one. */
	CHECK_EQ(U(send)(c, buf, 30, MSG_MORE), 30);
	CHECK_EQ(U(send)(c, buf, 0, 0), 0);
	{
		uint8_t x;

		CHECK_ERR(recv(s, &x, 1, MSG_DONTWAIT), EAGAIN);
	}
	/* ... but a zero-length send with a record type flushes it and sends nothing. */
	CHECK_EQ(send_typed(c, buf, 0, 0, 21), 0);
	CHECK(wire_records(s, &cd, 1, types, lens, got, sizeof(got)) == 0);
	CHECK_EQ(types[0], 23);
	CHECK_EQ(lens[0], 30);

#ifndef TEST_KERNEL_61
	/* TLS_TX_MAX_PAYLOAD_LEN caps the plaintext per record. */
	{
		uint16_t lim = 128, got16 = 0;
		socklen_t ol = sizeof(got16);

		CHECK(U(setsockopt)(c, SOL_TLS, TLS_TX_MAX_PAYLOAD_LEN, &lim, sizeof(lim)) == 0);
		CHECK(U(getsockopt)(c, SOL_TLS, TLS_TX_MAX_PAYLOAD_LEN, &got16, &ol) == 0);
		CHECK_EQ(got16, 128);
		CHECK_EQ(ol, 2);
		CHECK_EQ(U(send)(c, buf, 300, 0), 300);
		CHECK(wire_records(s, &cd, 3, types, lens, got, sizeof(got)) == 0);
		CHECK_EQ(lens[0], 128);
		CHECK_EQ(lens[1], 128);
		CHECK_EQ(lens[2], 44);
		/* Not while a record is open. */
		CHECK_EQ(U(send)(c, buf, 5, MSG_MORE), 5);
		lim = 256;
		CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX_MAX_PAYLOAD_LEN, &lim, sizeof(lim)), EBUSY);
		lim = 63 + (v->version == TLS_1_2_VERSION);
		CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX_MAX_PAYLOAD_LEN, &lim, 1), EBUSY);
	}
#else
	/* 6.1 has no TLS_TX_MAX_PAYLOAD_LEN (from 6.19): an unknown SOL_TLS option. */
	{
		uint16_t lim = 128;

		CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX_MAX_PAYLOAD_LEN, &lim, sizeof(lim)), ENOPROTOOPT);
	}
#endif
	codec_free(&cd);
	close_pair(c, s);
}

static void t_control_records(const struct variant *v, uint64_t seed)
{
	int c, s, mf;
	uint8_t buf[64], type;

	CHECK(tls_pair(v, seed, &c, &s, false) == 0);
	CHECK_EQ(U(send)(c, "data1", 5, 0), 5);
	CHECK_EQ(send_typed(c, "alert", 5, 0, 21), 5);
	CHECK_EQ(send_typed(c, "alert2", 6, 0, 21), 6);
	CHECK_EQ(U(send)(c, "data2", 5, 0), 5);
	/* One record type per call: data first, with its cmsg. */
	CHECK_EQ(recv_typed(s, buf, sizeof(buf), MSG_WAITALL, &type, &mf), 5);
	CHECK_EQ(type, 23);
	CHECK(memcmp(buf, "data1", 5) == 0);
	CHECK(mf & MSG_EOR);
	/* A control record without room for its cmsg: EIO, and it stays queued; the
	 * failed call leaves the caller's msghdr as it was. */
	CHECK_ERR(U(recv)(s, buf, sizeof(buf), 0), EIO);
	{
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_flags = 0x4242 };

		CHECK_ERR(U(recvmsg)(s, &m, 0), EIO);
		CHECK_EQ(m.msg_flags, 0x4242);
		CHECK_EQ(m.msg_controllen, 0);
	}
	/* Peek with a cmsg, then read: the same record. */
	CHECK_EQ(recv_typed(s, buf, sizeof(buf), MSG_PEEK, &type, NULL), 5);
	CHECK_EQ(type, 21);
	CHECK_EQ(recv_typed(s, buf, sizeof(buf), 0, &type, NULL), 5);
	CHECK_EQ(type, 21);
	CHECK(memcmp(buf, "alert", 5) == 0);
	/* Two control records of one type are not merged. */
	CHECK_EQ(recv_typed(s, buf, sizeof(buf), 0, &type, NULL), 6);
	CHECK_EQ(type, 21);
	CHECK_EQ(recv_typed(s, buf, sizeof(buf), 0, &type, &mf), 5);
	CHECK_EQ(type, 23);
	/* Data read without a control buffer reports MSG_CTRUNC (the kernel's put_cmsg). */
	CHECK_EQ(U(send)(c, "d3", 2, 0), 2);
	{
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

		CHECK_EQ(U(recvmsg)(s, &m, 0), 2);
		CHECK(m.msg_flags & MSG_CTRUNC);
	}
	close_pair(c, s);
}

static void t_cmsg_errors(const struct variant *v, uint64_t seed)
{
	int c, s;
	char cbuf[CMSG_SPACE(4)] = { 0 };
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf };
	struct cmsghdr *cm = (struct cmsghdr *)cbuf;

	CHECK(tls_pair(v, seed, &c, &s, false) == 0);
	/* Control data without any SOL_TLS cmsg. */
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(4);
	m.msg_controllen = CMSG_SPACE(4);
	CHECK_ERR(U(sendmsg)(c, &m, 0), EINVAL);
	/* Wrong SOL_TLS type, short length, and MSG_MORE. */
	cm->cmsg_level = SOL_TLS;
	cm->cmsg_type = TLS_GET_RECORD_TYPE;
	CHECK_ERR(U(sendmsg)(c, &m, 0), EINVAL);
	cm->cmsg_type = TLS_SET_RECORD_TYPE;
	cm->cmsg_len = CMSG_LEN(0);
	CHECK_ERR(U(sendmsg)(c, &m, 0), EINVAL);
	cm->cmsg_len = CMSG_LEN(1);
	CHECK_ERR(U(sendmsg)(c, &m, MSG_MORE), EINVAL);
	/* Flags the kernel refuses. */
	CHECK_ERR(U(send)(c, "x", 1, MSG_OOB), EOPNOTSUPP);
	CHECK_ERR(U(send)(c, "x", 1, MSG_DONTROUTE), EOPNOTSUPP);
#ifndef TEST_KERNEL_61
	CHECK_ERR(U(send)(c, "x", 1, MSG_MORE | MSG_EOR), EINVAL);
#else
	/* 6.1 refuses MSG_EOR itself before looking at MSG_MORE. */
	CHECK_ERR(U(send)(c, "x", 1, MSG_MORE | MSG_EOR), EOPNOTSUPP);
#endif
	close_pair(c, s);
}

static void t_peek_waitall_lowat(const struct variant *v, uint64_t seed)
{
	int c, s, lowat = 8;
	uint8_t buf[64];

	CHECK(tls_pair(v, seed, &c, &s, false) == 0);
	CHECK_EQ(U(send)(c, "0123456789", 10, 0), 10);
	CHECK_EQ(U(send)(c, "abcde", 5, 0), 5);
	/* Peek spans complete data records; then the same bytes are read. */
	CHECK_EQ(u_read_full(s, buf, 15, MSG_PEEK | MSG_WAITALL), 15);
	CHECK(memcmp(buf, "0123456789abcde", 15) == 0);
	CHECK_EQ(U(recv)(s, buf, 3, MSG_PEEK), 3);
	CHECK(memcmp(buf, "012", 3) == 0);
	/* A record peeked whole again, from what an earlier call decrypted, is MSG_EOR. */
	{
		struct iovec iov = { .iov_base = buf, .iov_len = 12 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

		CHECK_EQ(U(recvmsg)(s, &m, MSG_PEEK), 12);
		CHECK(m.msg_flags & MSG_EOR);
	}
	/* MSG_OOB means nothing to a TLS read: it reads. */
	CHECK_EQ(U(recv)(s, buf, 3, MSG_PEEK | MSG_OOB), 3);
	/* Partial reads of a record. */
	CHECK_EQ(U(recv)(s, buf, 4, 0), 4);
	CHECK(memcmp(buf, "0123", 4) == 0);
	/* The kernel selftest recv_lowat: lowat 8 with 6 + 5 left, recv(10) returns 8? It
	 * returns all that is complete up to the buffer: 6 + min(5, 4) = 10. */
	CHECK(U(setsockopt)(s, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) == 0);
	CHECK_EQ(U(recv)(s, buf, 10, 0), 10);
	CHECK(memcmp(buf, "456789abcd", 10) == 0);
	/* With a low-water mark above what is there, a blocking read waits for more. */
	CHECK_EQ(U(send)(c, "XYZ", 3, 0), 3);
	CHECK_EQ(U(send)(c, "WVUTSR", 6, 0), 6);
	CHECK_EQ(U(recv)(s, buf, 20, 0), 10);
	CHECK(memcmp(buf, "eXYZWVUTSR", 10) == 0);
	lowat = 1;
	CHECK(U(setsockopt)(s, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) == 0);
	/* MSG_WAITALL waits across records. */
	CHECK_EQ(U(send)(c, "1234567890", 10, 0), 10);
	CHECK_EQ(U(send)(c, "abcdefghij", 10, 0), 10);
	CHECK_EQ(U(recv)(s, buf, 20, MSG_WAITALL), 20);
	CHECK(memcmp(buf, "1234567890abcdefghij", 20) == 0);
	/* Nothing queued: EAGAIN without blocking. */
	CHECK_ERR(U(recv)(s, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN);
	/* recv of zero bytes returns 0 at once. */
	CHECK_EQ(U(recv)(s, buf, 0, 0), 0);
	close_pair(c, s);
}

static void *drain_thread(void *arg)
{
	int *a = arg;
	uint8_t *buf = malloc(1 << 20);
	size_t got = 0, want = (size_t)a[1];

	while (got < want) {
		ssize_t r = U(recv)(a[0], buf + (got % (1 << 19)), 65536, 0);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	a[2] = (int)got;
	free(buf);
	return NULL;
}

static void t_nonblocking(const struct variant *v, uint64_t seed)
{
	int c, s, sndbuf = 4096;
	size_t total = 0, cap = 4 << 20;
	uint8_t *buf = malloc(cap), *rbuf = malloc(cap);
	uint64_t rng = seed;
	int eagain = 0;

	CHECK(tls_pair(v, seed, &c, &s, false) == 0);
	CHECK(U(setsockopt)(c, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) == 0);
	CHECK(U(setsockopt)(s, SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf)) == 0);
	nonblock(c);
	t_fill(&rng, buf, cap);
	/* Fill until TCP pushes back: each call returns the plaintext it accepted. */
	while (total < cap - 70000 && eagain < 3) {
		size_t len = 1 + t_rand(&rng) % 40000;
		ssize_t r = U(send)(c, buf + total, len, 0);

		if (r < 0) {
			CHECK_EQ(errno, EAGAIN);
			eagain++;
			continue;
		}
		CHECK(r > 0 && (size_t)r <= len);
		total += (size_t)r;
	}
	CHECK(eagain > 0);
	/* Now drain, finishing pending records with poll as the app would. */
	{
		size_t got = 0;

		nonblock(s);
		while (got < total) {
			struct pollfd p[2] = { { .fd = c, .events = POLLOUT }, { .fd = s, .events = POLLIN } };
			ssize_t r;

			CHECK(U(poll)(p, 2, 2000) > 0);
			if (p[1].revents & POLLIN) {
				r = U(recv)(s, rbuf + got, cap - got, 0);
				if (r > 0)
					got += (size_t)r;
				else
					CHECK(r < 0 && errno == EAGAIN);
			}
			if (!(p[0].revents | p[1].revents))
				break;
		}
		CHECK_EQ(got, total);
		CHECK(memcmp(rbuf, buf, total) == 0);
	}
	close_pair(c, s);
	free(buf);
	free(rbuf);
}

static void t_setsockopt_errors(const struct variant *v, uint64_t seed)
{
	struct keys k, k2;
	int c, s, l;
	uint32_t one = 1;

	keys_make(v, seed, &k);
	/* Not connected, and listening: ENOTCONN. */
	l = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_ERR(ulp(l), ENOTCONN);
	CHECK_ERR(U(setsockopt)(l, SOL_TCP, TCP_ULP, "nope", 4), ENOENT);
	U(close)(l);
	CHECK(tcp_pair(&c, &s) == 0);
	/* SOL_TLS without the ULP: the IP layer refuses. */
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX, k.info, k.len), ENOPROTOOPT);
	CHECK_ERR(U(setsockopt)(c, SOL_TCP, TCP_ULP, "tls", 0), EINVAL);
	CHECK(U(setsockopt)(c, SOL_TCP, TCP_ULP, "tls", 3) == 0);	/* no NUL needed */
	CHECK_ERR(ulp(c), EEXIST);
	{
		char name[16] = { 0 };
		socklen_t nl = sizeof(name);

		CHECK(U(getsockopt)(c, SOL_TCP, TCP_ULP, name, &nl) == 0);
		CHECK(strcmp(name, "tls") == 0);
		CHECK_EQ(nl, 16);
	}
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX, NULL, k.len), EINVAL);
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX, k.info, 3), EINVAL);
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX, k.info, k.len - 1), EINVAL);
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX, k.info, k.len + 1), EINVAL);
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, 99, k.info, k.len), ENOPROTOOPT);
	k2 = k;
	((struct tls_crypto_info *)k2.info)->version = 0x0302;
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX, k2.info, k2.len), EINVAL);
	k2 = k;
	((struct tls_crypto_info *)k2.info)->cipher_type = 50;
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX, k2.info, k2.len), EINVAL);
	k2 = k;
	((struct tls_crypto_info *)k2.info)->cipher_type = 59;
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX, k2.info, k2.len), EINVAL);
	/* No-pad needs TLS 1.3 keys and RX. */
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one)), EINVAL);
	CHECK(U(setsockopt)(c, SOL_TLS, TLS_TX_ZEROCOPY_RO, &one, sizeof(one)) == 0);
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX_ZEROCOPY_RO, &one, 2), EINVAL);
	one = 2;
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX_ZEROCOPY_RO, &one, sizeof(one)), EINVAL);
	one = 1;
	CHECK(U(setsockopt)(c, SOL_TLS, TLS_TX, k.info, k.len) == 0);
	/* RX must match TX's version and cipher. */
	k2 = k;
	((struct tls_crypto_info *)k2.info)->version =
		v->version == TLS_1_2_VERSION ? TLS_1_3_VERSION : TLS_1_2_VERSION;
	if (v->cipher < TLS_CIPHER_ARIA_GCM_128)
		CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_RX, k2.info, k2.len), EINVAL);
	{
		const struct variant *other = &variants[v->cipher == TLS_CIPHER_AES_GCM_128 ? 1 : 0];

		keys_make(other, seed, &k2);
		((struct tls_crypto_info *)k2.info)->version = v->version;
		CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_RX, k2.info, k2.len), EINVAL);
	}
	/* A second TX key: EBUSY on TLS 1.2; TLS 1.3 takes it as a rekey. */
	if (v->version == TLS_1_2_VERSION) {
		CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX, k.info, k.len), EBUSY);
	} else {
#ifndef TEST_KERNEL_61
		k2 = k;
		((struct tls_crypto_info *)k2.info)->version = TLS_1_2_VERSION;
		CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX, k2.info, k2.len), EINVAL);
#else
		/* 6.1 has no rekey: a second TLS_TX is EBUSY on 1.3 as well. */
		CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX, k.info, k.len), EBUSY);
#endif
	}
	CHECK(U(setsockopt)(c, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	if (v->version == TLS_1_3_VERSION) {
		uint32_t got = 9;
		socklen_t gl = sizeof(got);

		CHECK(U(setsockopt)(c, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one)) == 0);
		CHECK(U(getsockopt)(c, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &got, &gl) == 0);
		CHECK_EQ(got, 1);
		one = 2;
		CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one)), EINVAL);
	} else {
		CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof(one)), EINVAL);
	}
	close_pair(c, s);
}

static void t_getsockopt(const struct variant *v, uint64_t seed)
{
	struct keys k;
	int c, s;
	uint8_t out[64], buf[100];
	socklen_t ol;

	keys_make(v, seed, &k);
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(c) == 0 && ulp(s) == 0);
	ol = sizeof(struct tls_crypto_info);
	CHECK_ERR(U(getsockopt)(c, SOL_TLS, TLS_TX, out, &ol), EBUSY);
	CHECK(U(setsockopt)(c, SOL_TLS, TLS_TX, k.info, k.len) == 0);
	CHECK(U(setsockopt)(s, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	ol = 3;
	CHECK_ERR(U(getsockopt)(c, SOL_TLS, TLS_TX, out, &ol), EINVAL);
	ol = k.len - 1;
	CHECK_ERR(U(getsockopt)(c, SOL_TLS, TLS_TX, out, &ol), EINVAL);
	ol = k.len + 1;
	CHECK_ERR(U(getsockopt)(c, SOL_TLS, TLS_TX, out, &ol), EINVAL);
	ol = sizeof(struct tls_crypto_info);
	memset(out, 0, sizeof(out));
	CHECK(U(getsockopt)(c, SOL_TLS, TLS_TX, out, &ol) == 0);
	CHECK_EQ(ol, 4);
	CHECK(memcmp(out, k.info, 4) == 0);
	ol = k.len;
	CHECK(U(getsockopt)(c, SOL_TLS, TLS_TX, out, &ol) == 0);
	CHECK(memcmp(out, k.info, k.len) == 0);
	/* After 3 records: rec_seq + 3; TLS 1.2 GCM/CCM iv + 3 too; key unchanged. */
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(U(send)(c, "abc", 3, 0), 3);
		CHECK_EQ(U(recv)(s, buf, sizeof(buf), 0), 3);
	}
	{
		struct codec cd;
		uint64_t seq0 = be64(k.info + v->off_rec_seq);
		bool explicit_iv = v->version == TLS_1_2_VERSION && v->iv_len == 8;

		CHECK(codec_init(&cd, v, &k) == 0);
		for (int dir = 0; dir < 2; dir++) {
			ol = k.len;
			CHECK(U(getsockopt)(dir ? s : c, SOL_TLS, dir ? TLS_RX : TLS_TX, out, &ol) == 0);
			CHECK_EQ(be64(out + v->off_rec_seq), seq0 + 3);
			CHECK(memcmp(out + v->off_key, k.info + v->off_key, v->key_len) == 0);
			if (explicit_iv)
				CHECK_EQ(be64(out + v->off_iv), be64(k.info + v->off_iv) + 3);
			else
				CHECK(memcmp(out + v->off_iv, k.info + v->off_iv, v->iv_len) == 0);
		}
		codec_free(&cd);
	}
	close_pair(c, s);
}

/* Hand-made records on a raw socket to a TLS_RX socket. */
static void t_rx_errors(const struct variant *v, uint64_t seed)
{
	struct keys k;
	struct codec cd;
	int c, s;
	uint8_t rec[20000], buf[20000], type;
	size_t n;
	bool v13 = v->version == TLS_1_3_VERSION;
	size_t overhead = 16 + (v->version == TLS_1_2_VERSION && v->iv_len == 8 ? 8 : 0);

	keys_make(v, seed, &k);

	/* Oversize: EMSGSIZE once, then the stream reads as empty. */
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(s) == 0);
	CHECK(U(setsockopt)(s, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	memset(rec, 0, 13);
	rec[0] = 23; rec[1] = 3; rec[2] = 3;
	n = 16384 + overhead + v13 + 1;
	rec[3] = (uint8_t)(n >> 8); rec[4] = (uint8_t)n;
	CHECK_EQ(send(c, rec, 13, 0), 13);
	CHECK_ERR(U(recv)(s, buf, sizeof(buf), 0), EMSGSIZE);
	CHECK_ERR(U(recv)(s, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN);
	close_pair(c, s);

	/* Too short: EBADMSG. Bad version: EINVAL. */
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(s) == 0);
	CHECK(U(setsockopt)(s, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	n = overhead - 1;
	rec[3] = (uint8_t)(n >> 8); rec[4] = (uint8_t)n;
	CHECK_EQ(send(c, rec, 13, 0), 13);
	CHECK_ERR(U(recv)(s, buf, sizeof(buf), 0), EBADMSG);
	close_pair(c, s);
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(s) == 0);
	CHECK(U(setsockopt)(s, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	rec[1] = 3; rec[2] = 1; rec[3] = 0; rec[4] = 100;
	CHECK_EQ(send(c, rec, 13, 0), 13);
	CHECK_ERR(U(recv)(s, buf, sizeof(buf), 0), EINVAL);
	close_pair(c, s);

	/* Bad tag after good records: data first, then EBADMSG on every read. */
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(s) == 0);
	CHECK(U(setsockopt)(s, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	CHECK(codec_init(&cd, v, &k) == 0);
	n = codec_seal(&cd, 23, "hello", 5, 0, rec);
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	n = codec_seal(&cd, 23, "world", 5, 0, rec);
	rec[n - 1] ^= 1;
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	CHECK_EQ(U(recv)(s, buf, sizeof(buf), MSG_WAITALL), 5);
	CHECK_ERR(U(recv)(s, buf, sizeof(buf), 0), EBADMSG);
	CHECK_ERR(U(recv)(s, buf, sizeof(buf), 0), EBADMSG);
	{
		struct pollfd p = { .fd = s, .events = POLLIN };

		/* The record is still there (POLLIN) and the socket has an error. */
		CHECK(U(poll)(&p, 1, 0) == 1);
		CHECK(p.revents & POLLIN);
		CHECK(p.revents & POLLERR);
	}
	codec_free(&cd);
	close_pair(c, s);

	/* Zero-length records (the kernel selftest zero_len) and 1.3 padding. */
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(s) == 0);
	CHECK(U(setsockopt)(s, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	CHECK(codec_init(&cd, v, &k) == 0);
	n = codec_seal(&cd, 23, NULL, 0, 0, rec);
	n += codec_seal(&cd, 23, NULL, 0, 0, rec + n);
	n += codec_seal(&cd, 23, NULL, 0, 0, rec + n);
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	usleep(10000);
	CHECK_ERR(U(recv)(s, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN);
	n = codec_seal(&cd, 23, NULL, 0, 0, rec);
	n += codec_seal(&cd, 21, "0123456789a", 11, 0, rec + n);
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	usleep(10000);
	CHECK_EQ(recv_typed(s, buf, sizeof(buf), MSG_DONTWAIT, &type, NULL), 0);
	CHECK_EQ(type, 23);
	CHECK_EQ(recv_typed(s, buf, sizeof(buf), MSG_DONTWAIT, &type, NULL), 11);
	CHECK_EQ(type, 21);
	n = codec_seal(&cd, 21, NULL, 0, 0, rec);
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	CHECK_EQ(recv_typed(s, buf, sizeof(buf), 0, &type, NULL), 0);
	CHECK_EQ(type, 21);
	if (v13) {
		/* Padding is stripped; a record that is all padding is EBADMSG. */
		n = codec_seal(&cd, 23, "padded", 6, 100, rec);
		CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
		CHECK_EQ(recv_typed(s, buf, sizeof(buf), 0, &type, NULL), 6);
		CHECK(memcmp(buf, "padded", 6) == 0);
		{
			/* Inner plaintext of zeros only: seal a 1.2-style body by hand. */
			uint8_t zeros[32] = { 0 };
			struct iovec in = { .iov_base = zeros, .iov_len = 32 }, o;
			uint8_t nonce[12], *body = rec + 5;

			rec[0] = 23; rec[1] = 3; rec[2] = 3; rec[3] = 0; rec[4] = 48;
			codec_nonce(&cd, NULL, nonce);
			o.iov_base = body;
			o.iov_len = 32;
			ulpo_aead_seal(cd.aead, nonce, rec, 5, &in, 1, &o, 1, body + 32);
			CHECK_EQ(send(c, rec, 53, 0), 53);
			CHECK_ERR(U(recv)(s, buf, sizeof(buf), 0), EBADMSG);
		}
	}
	codec_free(&cd);
	close_pair(c, s);

	/* A record held by a peek before a bad header is still delivered, then the error
	 * once, then nothing (found by the fuzzer: the held record was dropped). */
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(s) == 0);
	CHECK(U(setsockopt)(s, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	CHECK(codec_init(&cd, v, &k) == 0);
	n = codec_seal(&cd, 23, "hello", 5, 0, rec);
	memcpy(rec + n, "\x17\x03\x03\x7f\xff\0\0\0\0\0\0\0\0", 13);
	CHECK_EQ(send(c, rec, n + 13, 0), (ssize_t)n + 13);
	usleep(10000);
	CHECK_EQ(U(recv)(s, buf, 100, MSG_PEEK | MSG_DONTWAIT), 5);
	{
		int e = 0;
		socklen_t el = sizeof(e);

		CHECK(U(getsockopt)(s, SOL_SOCKET, SO_ERROR, &e, &el) == 0);
		CHECK_EQ(e, EMSGSIZE);	/* reported, and cleared */
	}
	/* More bytes arrive, and wanting more than is held makes the reader read them. */
	n = codec_seal(&cd, 23, "world", 5, 0, rec);
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	usleep(10000);
	CHECK_EQ(U(recv)(s, buf, 100, MSG_PEEK | MSG_WAITALL | MSG_DONTWAIT), 5);
	memset(buf, 0, 100);
	CHECK_EQ(U(recv)(s, buf, 100, MSG_DONTWAIT), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	CHECK_ERR(U(recv)(s, buf, 100, MSG_DONTWAIT), EAGAIN);
	codec_free(&cd);
	close_pair(c, s);

	/* A peer that vanishes mid-record: the partial record is dropped, read gives 0. */
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(s) == 0);
	CHECK(U(setsockopt)(s, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	CHECK(codec_init(&cd, v, &k) == 0);
	n = codec_seal(&cd, 23, "whole", 5, 0, rec);
	n += codec_seal(&cd, 23, "partial", 7, 0, rec + n);
	CHECK_EQ(send(c, rec, n - 3, 0), (ssize_t)n - 3);
	close(c);
	CHECK_EQ(U(recv)(s, buf, sizeof(buf), 0), 5);
	CHECK_EQ(U(recv)(s, buf, sizeof(buf), 0), 0);
	codec_free(&cd);
	U(close)(s);
}

static void t_rekey(const struct variant *v, uint64_t seed)
{
	struct keys k, k2;
	int c, s;
	uint8_t buf[64], type;
	uint8_t keyupdate[5] = { 24, 0, 0, 1, 0 };

	if (v->version != TLS_1_3_VERSION)
		return;	/* covered by t_setsockopt_errors: EBUSY */
#ifdef TEST_KERNEL_61
	/* 6.1 has no rekey (a second key is EBUSY) and no KeyUpdate handling: the record is
	 * ordinary handshake data and reading goes on with the old key. */
	CHECK(tls_pair(v, seed, &c, &s, false) == 0);
	keys_make(v, seed + 99, &k2);
	CHECK_EQ(send_typed(c, keyupdate, sizeof(keyupdate), 0, 22), 5);
	CHECK_ERR(U(setsockopt)(c, SOL_TLS, TLS_TX, k2.info, k2.len), EBUSY);
	CHECK_EQ(U(send)(c, "after", 5, 0), 5);
	CHECK_EQ(recv_typed(s, buf, sizeof(buf), 0, &type, NULL), 5);
	CHECK_EQ(type, 22);
	CHECK_EQ(U(recv)(s, buf, sizeof(buf), 0), 5);
	CHECK_ERR(U(setsockopt)(s, SOL_TLS, TLS_RX, k2.info, k2.len), EBUSY);
	close_pair(c, s);
	return;
#endif
	CHECK(tls_pair(v, seed, &c, &s, false) == 0);
	keys_make(v, seed, &k);
	keys_make(v, seed + 99, &k2);
	keys_set_seq(v, &k2, 0);
	CHECK_EQ(U(send)(c, "before", 6, 0), 6);
	CHECK_EQ(send_typed(c, keyupdate, sizeof(keyupdate), 0, 22), 5);
	CHECK(U(setsockopt)(c, SOL_TLS, TLS_TX, k2.info, k2.len) == 0);
	CHECK_EQ(U(send)(c, "after", 5, 0), 5);
	CHECK_EQ(U(recv)(s, buf, sizeof(buf), 0), 6);
	{
		struct pollfd p = { .fd = s, .events = POLLIN };

		CHECK_EQ(recv_typed(s, buf, sizeof(buf), 0, &type, NULL), 5);
		CHECK_EQ(type, 22);
		/* Until the new key: EKEYEXPIRED, blocking or not, and no POLLIN. */
		CHECK_ERR(U(recv)(s, buf, sizeof(buf), 0), EKEYEXPIRED);
		CHECK_ERR(U(recv)(s, buf, sizeof(buf), MSG_DONTWAIT), EKEYEXPIRED);
		CHECK_EQ(U(poll)(&p, 1, 0), 0);
	}
	CHECK(U(setsockopt)(s, SOL_TLS, TLS_RX, k2.info, k2.len) == 0);
	CHECK_EQ(U(recv)(s, buf, sizeof(buf), 0), 5);
	CHECK(memcmp(buf, "after", 5) == 0);
	{
		uint8_t out[64];
		socklen_t ol = k2.len;

		CHECK(U(getsockopt)(s, SOL_TLS, TLS_RX, out, &ol) == 0);
		CHECK(memcmp(out + v->off_key, k2.info + v->off_key, v->key_len) == 0);
		CHECK_EQ(be64(out + v->off_rec_seq), 1);
	}
	close_pair(c, s);
}

static void t_seq_wrap(const struct variant *v, uint64_t seed)
{
	struct keys k;
	int c, s;
	uint8_t buf[16];

	keys_make(v, seed, &k);
	keys_set_seq(v, &k, UINT64_MAX - 1);
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(c) == 0 && ulp(s) == 0);
	CHECK(U(setsockopt)(c, SOL_TLS, TLS_TX, k.info, k.len) == 0);
	CHECK(U(setsockopt)(s, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	CHECK_EQ(U(send)(c, "last", 4, 0), 4);
	CHECK_EQ(U(recv)(s, buf, sizeof(buf), 0), 4);
	/* seq 2^64-1 would wrap: the connection aborts, no nonce is reused. */
	CHECK_ERR(U(send)(c, "wrap", 4, 0), EBADMSG);
	CHECK_ERR(U(send)(c, "wrap", 4, 0), EBADMSG);
	CHECK_ERR(U(recv)(s, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN);
	close_pair(c, s);
}

static void t_poll_partial(const struct variant *v, uint64_t seed)
{
	struct keys k;
	struct codec cd;
	int c, s;
	uint8_t rec[200], buf[200];
	size_t n;
	struct pollfd p;

	keys_make(v, seed, &k);
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(s) == 0);
	/* Ciphertext queued before TLS_RX is decrypted once it is installed. */
	CHECK(codec_init(&cd, v, &k) == 0);
	n = codec_seal(&cd, 23, "prequeued", 9, 0, rec);
	CHECK_EQ(send(c, rec, n, 0), (ssize_t)n);
	usleep(10000);
	CHECK(U(setsockopt)(s, SOL_TLS, TLS_RX, k.info, k.len) == 0);
	CHECK_EQ(U(recv)(s, buf, sizeof(buf), 0), 9);
	CHECK(memcmp(buf, "prequeued", 9) == 0);
	/* A partial record is not POLLIN; the whole record is. */
	n = codec_seal(&cd, 23, "partial record", 14, 0, rec);
	CHECK_EQ(send(c, rec, n - 1, 0), (ssize_t)n - 1);
	usleep(10000);
	p = (struct pollfd){ .fd = s, .events = POLLIN };
#ifdef TEST_KERNEL_61
	/* 6.1 has no tls_sk_poll: tcp_poll reports POLLIN for the partial record (masked from 6.5). */
	CHECK_EQ(U(poll)(&p, 1, 50), 1);
#else
	CHECK_EQ(U(poll)(&p, 1, 50), 0);
#endif
	CHECK_ERR(U(recv)(s, buf, sizeof(buf), MSG_DONTWAIT), EAGAIN);
	CHECK_EQ(send(c, rec + n - 1, 1, 0), 1);
	p.revents = 0;
	CHECK_EQ(U(poll)(&p, 1, 1000), 1);
	CHECK(p.revents & POLLIN);
	CHECK_EQ(U(recv)(s, buf, sizeof(buf), 0), 14);
	codec_free(&cd);
	close_pair(c, s);
}

static void t_sendfile(const struct variant *v, uint64_t seed)
{
	int c, s, fd;
	char path[] = "/tmp/ulpo-sendfile-XXXXXX";
	size_t len = 100000;
	uint8_t *buf = malloc(len), *got = malloc(len);
	uint64_t rng = seed;
	off_t off = 1000;

	t_fill(&rng, buf, len);
	fd = mkstemp(path);
	CHECK(fd >= 0 && write(fd, buf, len) == (ssize_t)len);
	unlink(path);
	CHECK(tls_pair(v, seed, &c, &s, false) == 0);
	CHECK_EQ(U(sendfile)(c, fd, &off, len - 1000), (ssize_t)(len - 1000));
	CHECK_EQ(off, (off_t)len);
	CHECK_EQ(u_read_full(s, got, len - 1000, 0), (ssize_t)(len - 1000));
	CHECK(memcmp(got, buf + 1000, len - 1000) == 0);
	close(fd);
	close_pair(c, s);
	free(buf);
	free(got);
}

static void t_close_flushes(const struct variant *v, uint64_t seed)
{
	int c, s, sndbuf = 4096, a[3];
	size_t len = 2 << 20, total = 0;
	uint8_t *buf = malloc(len);
	pthread_t th;

	CHECK(tls_pair(v, seed, &c, &s, false) == 0);
	CHECK(U(setsockopt)(c, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) == 0);
	nonblock(c);
	memset(buf, 0x5a, len);
	while (total < len) {
		ssize_t r = U(send)(c, buf, len - total, 0);

		if (r < 0)
			break;
		total += (size_t)r;
	}
	/* Close with a record TCP took only in part: it still reaches the peer whole. */
	a[0] = s;
	a[1] = (int)total;
	a[2] = 0;
	pthread_create(&th, NULL, drain_thread, a);
	CHECK(U(close)(c) == 0);
	pthread_join(th, NULL);
	CHECK_EQ(a[2], (int)total);
	U(close)(s);
	free(buf);
}

/* ---- tests without variants ---- */

static void t_fd_reuse(void)
{
	int c, s, c2, s2;
	uint8_t buf[8];

	CHECK(tls_pair(&variants[0], g_seed, &c, &s, false) == 0);
	CHECK(U(close)(c) == 0);
	CHECK(U(close)(s) == 0);
	/* The same fd numbers come back as plain TCP sockets. */
	CHECK(tcp_pair(&c2, &s2) == 0);
	CHECK_EQ(U(send)(c2, "plain", 5, 0), 5);
	CHECK_EQ(recv(s2, buf, sizeof(buf), 0), 5);
	CHECK(memcmp(buf, "plain", 5) == 0);
	CHECK(ulp(c2) == 0);
	close(c2);	/* behind ulpo's back: the stale entry must not leak into the next */
	close(s2);
	CHECK(tcp_pair(&c2, &s2) == 0);
	CHECK(ulp(c2) == 0);
	U(close)(c2);
	U(close)(s2);
}

struct test {
	const char *name;
	void (*fn)(const struct variant *v, uint64_t seed);
};

static const struct test tests[] = {
	{ "roundtrip_random", t_roundtrip_random },
	{ "wire_boundaries", t_wire_boundaries },
	{ "control_records", t_control_records },
	{ "cmsg_errors", t_cmsg_errors },
	{ "peek_waitall_lowat", t_peek_waitall_lowat },
	{ "nonblocking", t_nonblocking },
	{ "setsockopt_errors", t_setsockopt_errors },
	{ "getsockopt", t_getsockopt },
	{ "rx_errors", t_rx_errors },
	{ "rekey", t_rekey },
	{ "seq_wrap", t_seq_wrap },
	{ "poll_partial_prequeue", t_poll_partial },
	{ "sendfile", t_sendfile },
	{ "close_flushes", t_close_flushes },
};

static bool variant_usable(const struct variant *v)
{
	struct keys k;
	int c, s, r;

	keys_make(v, 1, &k);
	if (tcp_pair(&c, &s))
		return false;
	r = ulp(c) == 0 && U(setsockopt)(c, SOL_TLS, TLS_TX, k.info, k.len) == 0;
	U(close)(c);
	U(close)(s);
	return r;
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : getenv("TEST_ONLY");
	int passed = 0, failed = 0, skipped = 0;
	char name[128];

	g_seed = getenv("TEST_SEED") ? strtoull(getenv("TEST_SEED"), NULL, 0) : 0x5eed1234;
	printf("seed 0x%llx\n", (unsigned long long)g_seed);
	signal(SIGPIPE, SIG_IGN);
	for (size_t vi = 0; vi < NVARIANTS; vi++) {
		const struct variant *v = &variants[vi];

		if (!variant_usable(v)) {
			printf("SKIP %s (cipher not available here)\n", v->name);
			skipped += (int)(sizeof(tests) / sizeof(tests[0]));
			continue;
		}
		for (size_t ti = 0; ti < sizeof(tests) / sizeof(tests[0]); ti++) {
			int before = t_failed_checks;

			snprintf(name, sizeof(name), "%s/%s", tests[ti].name, v->name);
			if (only && !strstr(name, only))
				continue;
			t_current = name;
			tests[ti].fn(v, g_seed + vi * 1000 + ti);
			t_tally(before, name, &passed, &failed);
		}
	}
	if (!only || strstr("fd_reuse", only)) {
		int before = t_failed_checks;

		t_current = "fd_reuse";
		t_fd_reuse();
		t_tally(before, "fd_reuse", &passed, &failed);
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}
