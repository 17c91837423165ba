/* tls_main.c - the "tls" ULP: install on a TCP socket, SOL_TLS setsockopt/getsockopt
 * (key install, rekey, options), and the protocol ops that route each direction to the
 * record layer once it has keys, to plain TCP before. Follows net/tls/tls_main.c. */
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/stats.h"
#include "engine/engine.h"
#include "core/sys.h"
#include "tls/tls_rx.h"

#define TCP_ULP_NAME_MAX 16

/* ---- crypto state of one direction ---- */

int tls_crypto_init(struct tls_crypto *c, const void *info, size_t len)
{
	const struct tls_crypto_info *ci = info;
	const struct tls_cipher_desc *cd = tls_cipher_get(ci->cipher_type);
	const uint8_t *p = info;
	struct ulpo_aead *aead;
	int r;

	if (!cd || len != cd->info_len)
		return -EINVAL;
	r = ulpo_aead_new(cd->alg, ULPO_AEAD_BACKEND_AUTO, p + cd->off_key, cd->key_len, &aead);
	if (r < 0)
		return r == -ENOTSUP ? -EINVAL : r;
	tls_crypto_wipe(c);
	c->cd = cd;
	c->version = ci->version;
	c->aead = aead;
	c->backend = ulpo_aead_backend_of(aead);
	memcpy(c->iv, p + cd->off_salt, cd->salt_len);
	memcpy(c->iv + cd->salt_len, p + cd->off_iv, cd->iv_len);
	memcpy(c->rec_seq, p + cd->off_rec_seq, sizeof(c->rec_seq));
	memcpy(c->info, info, len);
	c->xor_seq = ci->version == TLS_1_3_VERSION || ci->cipher_type == TLS_CIPHER_CHACHA20_POLY1305;
	c->explicit_iv = c->xor_seq ? 0 : cd->iv_len;
	c->tail = ci->version == TLS_1_3_VERSION;
	return 0;
}

void tls_crypto_wipe(struct tls_crypto *c)
{
	ulpo_aead_free(c->aead);
	explicit_bzero(c, sizeof(*c));
}

int tls_crypto_key(struct tls_crypto *c)
{
	if (c->aead)
		return 0;
	return ulpo_aead_new(c->cd->alg, c->backend, c->info + c->cd->off_key, c->cd->key_len,
			     &c->aead);
}

void tls_crypto_unkey(struct tls_crypto *c)
{
	ulpo_aead_free(c->aead);
	c->aead = NULL;
}

static bool bigint_increment(uint8_t *seq, size_t len)
{
	for (size_t i = len; i-- > 0;)
		if (++seq[i])
			return false;
	return true;
}

static void bigint_sub(uint8_t *v, size_t len, unsigned int k)
{
	for (size_t i = len; i-- > 0 && k;) {
		unsigned int d = v[i] - (k & 0xff);

		v[i] = (uint8_t)d;
		k = (k >> 8) + (d > 0xff);	/* borrow */
	}
}

int tls_crypto_advance(struct tls_crypto *c)
{
	/* The kernel aborts the connection rather than reuse a nonce. */
	if (bigint_increment(c->rec_seq, sizeof(c->rec_seq)))
		return -EBADMSG;
	if (!c->xor_seq)
		bigint_increment(c->iv + c->cd->salt_len, c->cd->iv_len);
	return 0;
}

void tls_crypto_nonce(const struct tls_crypto *c, uint8_t nonce[TLS_NONCE_SIZE])
{
	memcpy(nonce, c->iv, TLS_NONCE_SIZE);
	if (c->xor_seq)
		for (int i = 0; i < 8; i++)
			nonce[i + 4] ^= c->rec_seq[i];
}

/* AAD: TLS 1.2 is seq || type || version || plaintext length; TLS 1.3 is the record
 * header itself (opaque type, legacy version, ciphertext length). */
size_t tls_make_aad(const struct tls_crypto *c, uint8_t *aad, uint8_t type, size_t plen,
		    size_t wire_payload_len)
{
	if (c->version == TLS_1_3_VERSION) {
		aad[0] = ULPO_TLS_RECORD_DATA;
		aad[1] = 3;
		aad[2] = 3;
		aad[3] = (uint8_t)(wire_payload_len >> 8);
		aad[4] = (uint8_t)wire_payload_len;
		return 5;
	}
	memcpy(aad, c->rec_seq, 8);
	aad[8] = type;
	aad[9] = 3;
	aad[10] = 3;
	aad[11] = (uint8_t)(plen >> 8);
	aad[12] = (uint8_t)plen;
	return 13;
}

static void job_done(struct ulpo_job *job)
{
	*(bool *)job->priv = true;
}

/* Run a job the caller waits for on the caller's thread (ULPO_JOB_F_INLINE: a device
 * completes such a job before submit returns), rather than hand it to a worker and wait
 * (RX decrypts one record at a time until parallel decrypt comes). */
int tls_job_run(struct tls_crypto *c, struct ulpo_job *job)
{
	bool done = false;
	int r = tls_crypto_key(c);

	if (r < 0)
		return r;
	job->aead = c->aead;
	job->complete = job_done;
	job->priv = &done;
	job->flags |= ULPO_JOB_F_INLINE;
	r = c->dev->ops->submit(c->dev, job);
	if (r < 0)
		return r;
	return done ? job->result : -EIO;	/* a device that broke the contract */
}

/* ---- ULP install ---- */

static void tls_ctx_free(struct tls_context *ctx)
{
	if (!ctx)
		return;
	tls_tx_free(ctx);
	tls_rx_free(ctx);
	tls_share_detach(ctx);
	tls_crypto_wipe(&ctx->tx);
	tls_crypto_wipe(&ctx->rx);
	pthread_mutex_destroy(&ctx->work_lock);
	free(ctx);
}

static int sock_rcvlowat(int fd)
{
	int v = 1;
	socklen_t l = sizeof(v);

	if (ulpo_sys_getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, &l) || v < 1)
		v = 1;
	return v;
}

static bool tcp_established(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	return ulpo_sys_getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == 1;
}

int ulpo_ulp_install(struct ulpo_sock *sk, const char *optval, size_t optlen)
{
	char name[TCP_ULP_NAME_MAX];
	struct tls_context *ctx;
	size_t n;

	if (optlen < 1)
		return -EINVAL;
	if (!optval)
		return -EFAULT;
	n = optlen < TCP_ULP_NAME_MAX - 1 ? optlen : TCP_ULP_NAME_MAX - 1;
	n = strnlen(optval, n);
	memcpy(name, optval, n);
	name[n] = 0;
	if (strcmp(name, "tls"))
		return -ENOENT;
	if (sk->proto != &ulpo_tcp_proto)
		return -EEXIST;
	if (!tcp_established(sk->fd))
		return -ENOTCONN;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->sk = sk;
	ctx->tx_work_epfd = -1;
	pthread_mutex_init(&ctx->work_lock, NULL);
	ctx->tx_max_payload = ULPO_TLS_MAX_PAYLOAD;
	ctx->rcvlowat = sock_rcvlowat(sk->fd);
	tls_txq_init(ctx);
	tls_share_init();
	tls_toe_attach(ctx);	/* which path carries the connection */
	pthread_mutex_lock(&sk->tx_lock);
	pthread_mutex_lock(&sk->rx_lock);
	sk->ulp = ctx;
	/* Release: the device's thread reads proto without the locks, then the context. */
	__atomic_store_n(&sk->proto, &ulpo_tls_proto, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&sk->rx_lock);
	pthread_mutex_unlock(&sk->tx_lock);
	ulpo_stats_publish();
	ulpo_stat_add(ULPO_STAT_ULP_SW, 1);
	return 0;
}

static bool tx_keyed(struct tls_context *ctx);
static bool rx_keyed(struct tls_context *ctx);

/* ---- SOL_TLS setsockopt ---- */

static int setsockopt_conf(struct tls_context *ctx, const void *optval, socklen_t optlen,
			   bool tx)
{
	struct tls_crypto *c = tx ? &ctx->tx : &ctx->rx;
	struct tls_crypto *alt = tx ? &ctx->rx : &ctx->tx;
	/* Shared with another process: what it installed counts (the keyed tests load). */
	bool ready = tx ? tx_keyed(ctx) : rx_keyed(ctx);
	bool alt_ready = tx ? rx_keyed(ctx) : tx_keyed(ctx);
	struct tls_crypto_info ci;
	const struct tls_cipher_desc *cd;
	struct tls_crypto fresh = { 0 };
	enum ulpo_stat rekey_err = tx ? ULPO_STAT_TLS_TX_REKEY_ERROR : ULPO_STAT_TLS_RX_REKEY_ERROR;
	int r;

	if (!optval || optlen < sizeof(ci))
		return -EINVAL;
	if (ready && c->version != TLS_1_3_VERSION) {
		/* Only TLS 1.3 may change keys on a live connection. */
		ulpo_stat_add(rekey_err, 1);
		return -EBUSY;
	}
	memcpy(&ci, optval, sizeof(ci));
	if (ready) {
		if (ci.version != c->version || ci.cipher_type != c->cd->type) {
			r = -EINVAL;
			goto err;
		}
	} else {
		if (ci.version != TLS_1_2_VERSION && ci.version != TLS_1_3_VERSION)
			return -EINVAL;
		if (alt_ready && (alt->version != ci.version || alt->cd->type != ci.cipher_type))
			return -EINVAL;
	}
	cd = tls_cipher_get(ci.cipher_type);
	if (!cd || (cd->tls12_only && ci.version != TLS_1_2_VERSION) || optlen != cd->info_len) {
		r = -EINVAL;
		goto err;
	}
	r = tls_crypto_init(&fresh, optval, optlen);
	if (r < 0)
		goto err;
	fresh.dev = ulpo_device_bind_tls(ctx->sk, tx ? ULPO_TLS_DIR_TX : ULPO_TLS_DIR_RX);
	if (tx) {
		tls_tx_lock(ctx);
		/* Records closed under the old key are sealed with it before it is wiped. */
		if (ready) {
			tls_txq_wait_sealed(ctx);
			tls_txq_trim(ctx);	/* spares keyed with the old key */
		}
		tls_crypto_wipe(&ctx->tx);
		ctx->tx = fresh;
		ctx->tx_key_gen++;
		if (!ready)
			tls_toe_key(ctx, true);
		ctx->tx_ready = true;
		tls_tx_unlock(ctx);
	} else {
		tls_rx_lock(ctx);
		tls_rx_ahead_reset(ctx);	/* nothing decrypted ahead under the old key stays */
		tls_crypto_wipe(&ctx->rx);
		ctx->rx = fresh;
		ctx->rx_key_gen++;
		if (!ready)
			tls_toe_key(ctx, false);
		ctx->rx_ready = true;
		ctx->key_update_pending = false;
		tls_rx_unlock(ctx);
		if (ctx->toe_rx)
			tls_toe_kick(ctx, TOE_WORK_RX);	/* read ahead from now on */
	}
	explicit_bzero(&fresh, sizeof(fresh));
	if (ready) {
		ulpo_stat_add(tx ? ULPO_STAT_TLS_TX_REKEY_OK : ULPO_STAT_TLS_RX_REKEY_OK, 1);
	} else {
		ulpo_stat_add(tx ? ULPO_STAT_TLS_TX_SW : ULPO_STAT_TLS_RX_SW, 1);
		ulpo_stat_add(tx ? ULPO_STAT_TLS_CURR_TX_SW : ULPO_STAT_TLS_CURR_RX_SW, 1);
	}
	return 0;
err:
	if (ready)
		ulpo_stat_add(rekey_err, 1);
	return r;
}

static int tls_version_any(const struct tls_context *ctx)
{
	return ctx->tx_ready ? ctx->tx.version : ctx->rx_ready ? ctx->rx.version : 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

static int tls_setsockopt(struct ulpo_sock *sk, int level, int optname,
			  const void *optval, socklen_t optlen)
{
	struct tls_context *ctx = tls_ctx(sk);
	uint32_t val;
	uint16_t v16;

	if (level != SOL_TLS) {
		int r = ulpo_tcp_setsockopt(sk, level, optname, optval, optlen);

		if (r == 0 && level == SOL_SOCKET && optname == SO_RCVLOWAT)
			ctx->rcvlowat = sock_rcvlowat(sk->fd);
		if (r == 0 && level == SOL_SOCKET && optname == SO_SNDBUF)
			tls_toe_sndbuf(ctx);
		return r;
	}
	switch (optname) {
	case TLS_TX:
	case TLS_RX:
		return setsockopt_conf(ctx, optval, optlen, optname == TLS_TX);
	case TLS_TX_ZEROCOPY_RO:
		if (!optval || optlen != sizeof(val))
			return -EINVAL;
		memcpy(&val, optval, sizeof(val));
		if (val > 1)
			return -EINVAL;
		ctx->zerocopy_ro = val;
		return 0;
	case TLS_RX_EXPECT_NO_PAD:
		if (tls_version_any(ctx) != TLS_1_3_VERSION || !optval || optlen < sizeof(val))
			return -EINVAL;
		memcpy(&val, optval, sizeof(val));
		if (val > 1 || !all_zero((const uint8_t *)optval + sizeof(val), optlen - sizeof(val)))
			return -EINVAL;
		if (!ctx->rx_ready)
			return -EINVAL;
		tls_rx_lock(ctx);
		ctx->rx_no_pad = val;
		tls_rx_unlock(ctx);
		return 0;
	case TLS_TX_MAX_PAYLOAD_LEN: {
		/* 1.3 counts the content type byte apart: one less is allowed. */
		unsigned int min = TLS_MIN_RECORD_SIZE_LIM -
				   (tls_version_any(ctx) == TLS_1_3_VERSION);
		int r = 0;

		tls_tx_lock(ctx);
		if (ctx->tx_ready && ctx->open_len)
			r = -EBUSY;	/* the open record was sized under the old limit */
		else if (!optval || optlen != sizeof(v16))
			r = -EINVAL;
		else {
			memcpy(&v16, optval, sizeof(v16));
			if (v16 < min || v16 > ULPO_TLS_MAX_PAYLOAD)
				r = -EINVAL;
			else
				ctx->tx_max_payload = v16;
		}
		tls_tx_unlock(ctx);
		return r;
	}
	default:
		return -ENOPROTOOPT;
	}
}

/* ---- SOL_TLS getsockopt ---- */

static int getsockopt_conf(struct tls_context *ctx, void *optval, socklen_t *optlen, bool tx)
{
	struct tls_crypto *c = tx ? &ctx->tx : &ctx->rx;
	uint8_t info[TLS_CRYPTO_INFO_MAX];
	socklen_t len;
	int r = 0;

	if (!optlen)
		return -EFAULT;
	len = *optlen;
	if (!optval || len < sizeof(struct tls_crypto_info))
		return -EINVAL;
	if (tx)
		tls_tx_lock(ctx);
	else
		tls_rx_lock(ctx);
	if (!(tx ? ctx->tx_ready : ctx->rx_ready)) {
		r = -EBUSY;
		goto out;
	}
	memcpy(info, c->info, c->cd->info_len);
	if (len == sizeof(struct tls_crypto_info)) {
		memcpy(optval, info, len);
		goto out;
	}
	if (len != c->cd->info_len) {
		r = -EINVAL;
		goto out;
	}
	/* The current explicit IV and sequence, as the kernel reports them. */
	memcpy(info + c->cd->off_iv, c->iv + c->cd->salt_len, c->cd->iv_len);
	memcpy(info + c->cd->off_rec_seq, c->rec_seq, c->cd->rec_seq_len);
	if (!tx && ctx->rx_ahead_new) {
		/* Records decrypted ahead that no call has looked at yet were, as far as
		 * the caller can tell, never decrypted: report the numbers before them. */
		unsigned int k = (unsigned int)__builtin_popcountll(ctx->rx_ahead_new);

		bigint_sub(info + c->cd->off_rec_seq, c->cd->rec_seq_len, k);
		if (!c->xor_seq)
			bigint_sub(info + c->cd->off_iv, c->cd->iv_len, k);
	}
	memcpy(optval, info, len);
out:
	if (tx)
		tls_tx_unlock(ctx);
	else
		tls_rx_unlock(ctx);
	explicit_bzero(info, sizeof(info));
	return r;
}

static int tls_getsockopt(struct ulpo_sock *sk, int level, int optname,
			  void *optval, socklen_t *optlen)
{
	struct tls_context *ctx = tls_ctx(sk);
	uint32_t val;
	uint16_t v16;

	if (level == SOL_TCP && optname == TCP_ULP) {
		char name[TCP_ULP_NAME_MAX] = "tls";
		socklen_t len;

		if (!optlen)
			return -EFAULT;
		len = *optlen < TCP_ULP_NAME_MAX ? *optlen : TCP_ULP_NAME_MAX;
		*optlen = len;
		if (len && !optval)
			return -EFAULT;
		memcpy(optval, name, len);
		return 0;
	}
	if (level == SOL_SOCKET && optname == SO_ERROR && optval && optlen &&
	    *optlen >= sizeof(int)) {
		int e = -ulpo_sock_error(sk);

		if (e) {
			memcpy(optval, &e, sizeof(e));
			*optlen = sizeof(e);
			return 0;
		}
	}
	if (level != SOL_TLS)
		return ulpo_tcp_getsockopt(sk, level, optname, optval, optlen);
	switch (optname) {
	case TLS_TX:
	case TLS_RX:
		return getsockopt_conf(ctx, optval, optlen, optname == TLS_TX);
	case TLS_TX_ZEROCOPY_RO:
		if (!optlen)
			return -EFAULT;
		if (*optlen != sizeof(val))
			return -EINVAL;
		val = ctx->zerocopy_ro;
		memcpy(optval, &val, sizeof(val));
		return 0;
	case TLS_RX_EXPECT_NO_PAD:
		if (tls_version_any(ctx) != TLS_1_3_VERSION)
			return -EINVAL;
		if (!optlen)
			return -EFAULT;
		if (*optlen < sizeof(val) || !ctx->rx_ready)
			return -EINVAL;
		val = ctx->rx_no_pad;
		memcpy(optval, &val, sizeof(val));
		*optlen = sizeof(val);
		return 0;
	case TLS_TX_MAX_PAYLOAD_LEN:
		if (!optlen)
			return -EFAULT;
		if (*optlen < sizeof(v16))
			return -EINVAL;
		v16 = ctx->tx_max_payload;
		memcpy(optval, &v16, sizeof(v16));
		*optlen = sizeof(v16);
		return 0;
	default:
		return -ENOPROTOOPT;
	}
}

/* ---- protocol ops: each direction is TLS once keyed, TCP before ---- */

/* Whether a direction has keys. On a socket shared with another process since a fork,
 * that process may have installed them: look at the shared state (the lock loads it). */
static bool tx_keyed(struct tls_context *ctx)
{
	bool r;

	if (ctx->tx_ready || !tls_shared(ctx))
		return ctx->tx_ready;
	tls_tx_lock(ctx);
	r = ctx->tx_ready;
	tls_tx_unlock(ctx);
	return r;
}

static bool rx_keyed(struct tls_context *ctx)
{
	bool r;

	if (ctx->rx_ready || !tls_shared(ctx))
		return ctx->rx_ready;
	tls_rx_lock(ctx);
	r = ctx->rx_ready;
	tls_rx_unlock(ctx);
	return r;
}

/* A direction still on TCP reports an error the other direction set on the socket, as
 * tcp_sendmsg/tcp_recvmsg report sk_err (and clear it). */
static ssize_t tls_sendmsg(struct ulpo_sock *sk, const struct msghdr *msg, int flags)
{
	if (!tx_keyed(tls_ctx(sk))) {
		int err = ulpo_sock_error(sk);

		return err ? err : ulpo_tcp_sendmsg(sk, msg, flags);
	}
	return tls_sw_sendmsg(sk, msg, flags);
}

static ssize_t tls_recvmsg(struct ulpo_sock *sk, struct msghdr *msg, int flags)
{
	if (!rx_keyed(tls_ctx(sk))) {
		int err = ulpo_sock_error(sk);

		return err ? err : ulpo_tcp_recvmsg(sk, msg, flags);
	}
	return tls_sw_recvmsg(sk, msg, flags);
}

static ssize_t tls_splice_read(struct ulpo_sock *sk, void *buf, size_t len, int flags)
{
	if (!rx_keyed(tls_ctx(sk))) {
		int err = ulpo_sock_error(sk);

		return err ? err : ulpo_tcp_splice_read(sk, buf, len, flags);
	}
	return tls_sw_splice_read(sk, buf, len, flags);
}

static ssize_t tls_sendfile(struct ulpo_sock *sk, int in_fd, off_t *offset, size_t count)
{
	if (!tx_keyed(tls_ctx(sk)))
		return ulpo_tcp_sendfile(sk, in_fd, offset, count);
	return tls_sw_sendfile(sk, in_fd, offset, count);
}

/* A poll() that can wait on an eventfd besides the caller's fds (poll_loop) gets the
 * device's wakeups through it; otherwise (the shim's epoll) it polls in slices. */
static bool toe_poll_register(struct tls_context *ctx)
{
	int fd;

	if (!ulpo_poll_wake_ok)
		return false;
	fd = ulpo_poll_wake_fd >= 0 ? ulpo_poll_wake_fd : tls_toe_poll_fd();
	if (fd < 0)
		return false;
	/* seq_cst: before readiness is looked at, so the device's wake after its next
	 * progress finds it (tls_toe_wake). */
	atomic_store(&ctx->toe_wake_fd, fd);
	ulpo_poll_wake_fd = fd;
	return true;
}

static short tls_poll(struct ulpo_sock *sk, short events, short *ret_kernel_events,
		      bool *ret_busy)
{
	struct tls_context *ctx = tls_ctx(sk);
	short own = 0, kev = events;

	/* A socket error (a record that failed to decrypt) is POLLERR, as tcp_poll has it. */
	if (atomic_load_explicit(&sk->err, memory_order_relaxed))
		own |= POLLERR;
	/* Poll never waits for another process's call on a shared socket (a blocking
	 * read there holds the direction): then the kernel's view of TCP is reported. */
	if (ctx->toe_rx && (events & (POLLIN | POLLRDNORM))) {
		/* Offloaded: readiness is the device's; TCP's would only race with it. */
		kev &= ~(POLLIN | POLLRDNORM);
		if (!toe_poll_register(ctx))
			*ret_busy = true;
		tls_rx_lock(ctx);
		if (tls_rx_ready(ctx, false))
			own |= events & (POLLIN | POLLRDNORM);
		else
			tls_toe_rx_watch(ctx);
		tls_rx_unlock(ctx);
	} else if ((ctx->rx_ready || tls_shared(ctx)) && (events & (POLLIN | POLLRDNORM)) &&
		   tls_rx_lock_poll(ctx)) {
		if (ctx->rx_ready && tls_rx_ready(ctx, false))
			own |= events & (POLLIN | POLLRDNORM);
		tls_rx_unlock(ctx);
	}
	if (ctx->toe_tx) {
		/* Writable while the device's send buffer has room. */
		kev &= ~(POLLOUT | POLLWRNORM);
		if (events & (POLLOUT | POLLWRNORM)) {
			bool room;

			if (!toe_poll_register(ctx))
				*ret_busy = true;
			tls_tx_lock(ctx);
			room = tls_txq_writable(ctx) || ctx->txq_broken;
			tls_tx_unlock(ctx);
			if (room)
				own |= events & (POLLOUT | POLLWRNORM);
		}
	} else if (ctx->tx_ready && tls_tx_lock_poll(ctx)) {
		/* Records TCP has not taken go out when it has room, whether or not the
		 * caller asked for POLLOUT: this is the kernel's deferred tx work. */
		tls_txq_push(ctx, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (tls_txq_unsent_ready(ctx))
			kev |= POLLOUT;
		/* Records still being sealed: look again soon (their completion sends
		 * them; POLLOUT follows the in-flight bound). */
		*ret_busy = ctx->txq_head != NULL;
		tls_tx_unlock(ctx);
	}
	*ret_kernel_events = kev;
	return own;
}

static short tls_poll_finish(struct ulpo_sock *sk, short events, short krev)
{
	struct tls_context *ctx = tls_ctx(sk);
	short rev = krev;

	if (ctx->tx_ready && !ctx->toe_tx && (krev & POLLOUT) && tls_tx_lock_poll(ctx)) {
		tls_txq_push(ctx, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (!tls_txq_writable(ctx))
			rev &= ~(POLLOUT | POLLWRNORM);
		tls_tx_unlock(ctx);
	}
	if (ctx->rx_ready && !ctx->toe_rx && (krev & (POLLIN | POLLRDNORM))) {
		/* Bytes in TCP are readable only once they make a whole record. */
		if (tls_rx_lock_poll(ctx)) {
			if (!tls_rx_ready(ctx, true))
				rev &= ~(POLLIN | POLLRDNORM);
			tls_rx_unlock(ctx);
		}
	}
	return rev & (events | POLLERR | POLLHUP | POLLNVAL | POLLRDHUP);
}

static int tls_shutdown(struct ulpo_sock *sk, int how)
{
	struct tls_context *ctx = tls_ctx(sk);

	if (ctx->toe_tx && (how == SHUT_WR || how == SHUT_RDWR)) {
		/* tu_disconnect: the device sends the FIN after the queue. */
		int r = tls_toe_shutdown(ctx);

		if (r < 0 || how == SHUT_WR)
			return r;
		return ulpo_sys_shutdown(sk->fd, SHUT_RD) ? -errno : 0;
	}
	if (tx_keyed(ctx) && (how == SHUT_WR || how == SHUT_RDWR)) {
		/* Closed records reach the wire before the FIN. */
		tls_tx_lock(ctx);
		tls_txq_flush(ctx, MSG_NOSIGNAL);
		tls_tx_unlock(ctx);
	}
	return ulpo_sys_shutdown(sk->fd, how) ? -errno : 0;
}

/* close(): records already closed reach TCP before the fd goes. The context stays until
 * the last reference, as a call on another thread may still be using it. */
static void tls_release(struct ulpo_sock *sk)
{
	struct tls_context *ctx = tls_ctx(sk);

	/* Offloaded: close() returns now; the device finishes the queue (or resets). */
	if (tls_toe_release(ctx))
		goto rx;
	tls_tx_lock(ctx);
	if (ctx->tx_ready)
		tls_txq_flush(ctx, MSG_NOSIGNAL);
	tls_tx_work_forget(ctx);
	tls_tx_unlock(ctx);
rx:
	/* A decrypt-ahead batch still in flight ends here, and with it its reference. */
	tls_rx_lock(ctx);
	tls_rx_ahead_finish(ctx);
	tls_rx_unlock(ctx);
}

/* At exit(): records the application was told were sent reach TCP, as they would sit
 * in the kernel's socket for a kTLS program (the async engine may still hold some). A
 * peer that reads nothing does not hold the exit up for more than a few seconds. After
 * _exit() or a fatal signal nothing runs: what ulpo still held is lost. */
#define EXIT_FLUSH_MS 5000

static void flush_at_exit(struct ulpo_sock *sk, void *arg)
{
	struct tls_context *ctx = tls_ctx(sk);
	long *left_ms = arg;
	long long end = ulpo_now_ms() + *left_ms;

	if (sk->proto != &ulpo_tls_proto || !ctx->tx_ready || atomic_load(&sk->closing))
		return;
	tls_tx_lock(ctx);
	/* The budget is time on the clock: a poll that returns at once (TCP has room, the
	 * head is still being sealed) costs nothing of it, and records are not dropped
	 * while a worker finishes them. */
	while ((ctx->txq_head || tls_share_pend(ctx)) && ulpo_now_ms() < end &&
	       tls_txq_flush(ctx, MSG_DONTWAIT | MSG_NOSIGNAL) == -EAGAIN) {
		struct pollfd p = { .fd = sk->fd, .events = POLLOUT };

		/* Seal what is queued here if no worker is taking it. */
		if (ulpo_engine_help())
			continue;
		if (tls_txq_unsent_ready(ctx))
			ulpo_sys_poll(&p, 1, 10);	/* TCP is full */
		else
			nanosleep(&(struct timespec){ .tv_nsec = 200 * 1000 }, NULL);
	}
	*left_ms = (long)(end - ulpo_now_ms());
	tls_tx_unlock(ctx);
}

__attribute__((destructor)) static void tls_exit_flush(void)
{
	long left_ms = EXIT_FLUSH_MS;

	ulpo_sock_for_each(flush_at_exit, &left_ms);
	tls_toe_exit_flush(&left_ms);
}

/* The deferred-transmit set knows the socket by fd number: the old one (still open) is
 * forgotten, and records TCP refused are armed again under the new one. */
static void tls_fd_change(struct ulpo_sock *sk, int new_fd)
{
	struct tls_context *ctx = tls_ctx(sk);

	tls_tx_lock(ctx);
	tls_rx_lock(ctx);
	tls_tx_work_forget(ctx);	/* the work set forgets the old number */
	sk->fd = new_fd;
	if (ctx->tx_ready && tls_txq_unsent_ready(ctx))
		tls_tx_work_arm(ctx);
	/* The device's read-ahead is armed again under the new number. */
	if (ctx->toe_rx)
		tls_toe_kick(ctx, TOE_WORK_RX);
	tls_rx_unlock(ctx);
	tls_tx_unlock(ctx);	/* sends what a completion left to the lock's holder */
}

static void tls_destroy(struct ulpo_sock *sk)
{
	struct tls_context *ctx = tls_ctx(sk);

	if (ctx->tx_ready)
		ulpo_stat_add(ULPO_STAT_TLS_CURR_TX_SW, -1);
	if (ctx->rx_ready)
		ulpo_stat_add(ULPO_STAT_TLS_CURR_RX_SW, -1);
	tls_toe_detach_dev(ctx);
	sk->ulp = NULL;
	tls_ctx_free(ctx);	/* wipes keys and buffers */
}

const struct ulpo_proto ulpo_tls_proto = {
	.name = "tls",
	.sendmsg = tls_sendmsg,
	.recvmsg = tls_recvmsg,
	.splice_read = tls_splice_read,
	.sendfile = tls_sendfile,
	.poll = tls_poll,
	.poll_finish = tls_poll_finish,
	.shutdown = tls_shutdown,
	.release = tls_release,
	.fd_change = tls_fd_change,
	.destroy = tls_destroy,
	.setsockopt = tls_setsockopt,
	.getsockopt = tls_getsockopt,
};
