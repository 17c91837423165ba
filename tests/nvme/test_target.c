/* test_target.c - ulpo's NVMe/TCP target driven by a hand-written host (pdu.c) over
 * loopback: the admin and Fabrics commands and their refusals, I/O round trips (in-capsule,
 * R2T split at MAXH2CDATA, 1 MiB reads in several C2HData PDUs, HPDA padding, no SQ flow
 * control with the SUCCESS flag), and every transport violation: a C2HTermReq with the
 * right FES/FEI closes that connection only, digest errors on data fail one command only,
 * Keep Alive expiry, many queues at once, stop with connections open, a file namespace. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include <ulpo/nvme.h>

#include "../harness.h"
#include "engine/crc32c.h"
#include "nvmet_host.h"

int t_failed_checks;
const char *t_current;

#define NQN "nqn.2026-11.io.ulpo:test-target"
#define RAM (64u << 20)
#define MAXH2C 16384u
#define MQES 64
#define MAXQ 8
#define SC_SGL_INVALID_OFFSET 0x16

static struct ulpo_nvmet *g_t;
static int g_port;
static uint64_t g_seed = 0x6e766d6574ull;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int tcp(int port)
{
	struct timeval tv = { 5, 0 };	/* a target that stops answering fails, not hangs */
	int fd = th_tcp(port);

	CHECK(fd >= 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static int admin(struct th_q *q, bool enable, uint32_t kato)
{
	int r = th_admin(q, tcp(g_port), NQN, kato, enable);

	CHECK(r > 0);
	return r;
}

static bool ioq(struct th_q *q, int cntlid, uint16_t qid, bool hd, bool dd, uint8_t hpda,
		uint8_t cattr)
{
	int r = th_ioq(q, tcp(g_port), NQN, (uint16_t)cntlid, qid, hd, dd, hpda, cattr);

	CHECK_EQ(r, 0);
	return r == 0;
}

static void qclose(struct th_q *q)
{
	if (q->tc.fd >= 0)
		close(q->tc.fd);
	q->tc.fd = -1;
}

/* A command's status, or 0xffff when the transport failed. */
static uint16_t run(struct th_q *q, struct nvme_sqe s, const void *out, size_t outlen,
		    bool incap, void *in, size_t inlen, struct th_res *res)
{
	int r = th_exec(q, &s, out, outlen, incap, in, inlen, res);

	CHECK_EQ(r, 0);
	return r ? 0xffff : th_status(res);
}

static uint16_t wr(struct th_q *q, uint64_t slba, const void *buf, size_t len, bool incap,
		   struct th_res *res)
{
	return run(q, th_sqe_rw(NVME_CMD_WRITE, 1, slba, (uint32_t)(len / 512)), buf, len, incap,
		   NULL, 0, res);
}

static uint16_t rd(struct th_q *q, uint64_t slba, void *buf, size_t len, struct th_res *res)
{
	return run(q, th_sqe_rw(NVME_CMD_READ, 1, slba, (uint32_t)(len / 512)), NULL, 0, false,
		   buf, len, res);
}

static uint8_t *rnd_buf(size_t len)
{
	uint8_t *p = malloc(len);

	t_fill(&g_seed, p, len);
	return p;
}

static void get_stats(struct ulpo_nvmet_stats *st)
{
	ulpo_nvmet_get_stats(g_t, st);
}

/* The next PDU is a C2HTermReq with fes (and fei unless ~0u), then the connection ends. */
static void expect_term(struct th_q *q, uint16_t fes, uint32_t fei)
{
	struct nvme_tcp_term t;
	uint16_t f;
	uint32_t i;
	int r = nvme_tcp_recv_hdr(&q->tc, &f, &i);

	CHECK_EQ(r, 0);
	if (r)
		return;
	memcpy(&t, q->tc.hdr, sizeof(t));
	CHECK_EQ(t.hdr.type, NVME_TCP_C2H_TERM);
	CHECK_EQ(t.fes, fes);
	if (fei != ~0u)
		CHECK_EQ(t.fei, fei);
	nvme_tcp_skip_data(&q->tc);
	CHECK_EQ(nvme_tcp_recv_hdr(&q->tc, &f, &i), -ECONNRESET);
}

static void expect_eof(struct th_q *q)
{
	uint16_t f;
	uint32_t i;

	CHECK_EQ(nvme_tcp_recv_hdr(&q->tc, &f, &i), -ECONNRESET);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* A PDU framed as pdu.c does (HPDA 0), with its digests damaged on request. */
static int send_raw(struct th_q *q, void *hdr, const void *data, uint32_t len, bool bad_hd,
		    bool bad_dd)
{
	struct nvme_tcp_hdr *h = hdr;
	uint32_t hd = q->tc.hdgst ? 4 : 0, dd = q->tc.ddgst && len ? 4 : 0;
	size_t n = h->hlen + hd + len + dd, off = 0;
	uint8_t *b = malloc(n);
	int r = 0;

	h->flags |= (hd ? NVME_TCP_F_HDGST : 0) | (dd ? NVME_TCP_F_DDGST : 0);
	h->pdo = (uint8_t)(len ? h->hlen + hd : 0);
	h->plen = (uint32_t)n;
	memcpy(b, hdr, h->hlen);
	off = h->hlen;
	if (hd) {
		put_le32(b + off, ulpo_crc32c(0, hdr, h->hlen) ^ (bad_hd ? 1 : 0));
		off += 4;
	}
	if (len)
		memcpy(b + off, data, len);
	off += len;
	if (dd)
		put_le32(b + off, ulpo_crc32c(0, data, len) ^ (bad_dd ? 0x100 : 0));
	if (write(q->tc.fd, b, n) != (ssize_t)n)
		r = -EIO;
	free(b);
	return r;
}

static struct nvme_tcp_cmd capsule(struct th_q *q, struct nvme_sqe s, uint32_t len, bool incap)
{
	struct nvme_tcp_cmd c;

	memset(&c, 0, sizeof(c));
	c.hdr.type = NVME_TCP_CMD;
	c.hdr.hlen = NVME_TCP_CMD_HLEN;
	s.cid = ++q->cid;
	s.flags = NVME_CMD_FLAGS_SGL;
	s.dptr.length = len;
	s.dptr.type = incap ? NVME_SGL_INCAPSULE : NVME_SGL_TRANSPORT;
	c.sqe = s;
	return c;
}

/* Receive the next PDU, which must be an R2T; returns it. */
static struct nvme_tcp_r2t next_r2t(struct th_q *q)
{
	struct nvme_tcp_r2t t;
	uint16_t f;
	uint32_t i;

	memset(&t, 0, sizeof(t));
	CHECK_EQ(nvme_tcp_recv_hdr(&q->tc, &f, &i), 0);
	memcpy(&t, q->tc.hdr, sizeof(t));
	CHECK_EQ(t.hdr.type, NVME_TCP_R2T);
	return t;
}

/* ---- tests ---- */

static void t_admin(void)
{
	struct th_q a;
	struct th_res res;
	uint8_t id[4096];
	struct nvme_sqe s;
	uint64_t cap;
	int cntlid = admin(&a, false, 0);

	/* Nothing but properties before CC.EN. */
	s = th_sqe(NVME_ADMIN_IDENTIFY, 0);
	s.cdw10 = NVME_ID_CNS_CTRL;
	CHECK_EQ(run(&a, s, NULL, 0, false, id, sizeof(id), &res),
		 NVME_SC_CMD_SEQ_ERROR | NVME_SC_DNR);
	CHECK_EQ(th_prop(&a, false, true, NVME_REG_CAP, 0, &res), 0);
	cap = res.cqe.dw0 | (uint64_t)res.cqe.dw1 << 32;
	CHECK_EQ(cap & 0xffff, MQES - 1);
	CHECK(cap & 1ull << 16);
	CHECK_EQ(cap >> 24 & 0xff, 0x0f);
	CHECK(cap & 1ull << 37);
	CHECK_EQ(cap >> 48 & 0xf, 0);
	CHECK_EQ(th_prop(&a, false, false, NVME_REG_CAP, 0, &res), 0);
	CHECK_EQ(th_status(&res), NVME_SC_INVALID_FIELD | NVME_SC_DNR);
	CHECK_EQ(th_prop(&a, false, false, NVME_REG_VS, 0, &res), 0);
	CHECK_EQ(res.cqe.dw0, 0x10300);
	CHECK_EQ(th_prop(&a, true, false, 0x24, 1, &res), 0);
	CHECK_EQ(th_status(&res), NVME_SC_INVALID_FIELD | NVME_SC_DNR);
	CHECK_EQ(th_prop(&a, true, false, NVME_REG_CC, TH_CC_ENABLE, &res), 0);
	CHECK_EQ(th_status(&res), 0);
	CHECK_EQ(th_prop(&a, false, false, NVME_REG_CSTS, 0, &res), 0);
	CHECK_EQ(res.cqe.dw0 & (NVME_CSTS_RDY | NVME_CSTS_CFS), NVME_CSTS_RDY);
	CHECK_EQ(th_prop(&a, false, false, NVME_REG_CC, 0, &res), 0);
	CHECK_EQ(res.cqe.dw0, TH_CC_ENABLE);

	CHECK_EQ(run(&a, s, NULL, 0, false, id, sizeof(id), &res), 0);
	CHECK(!memcmp(id + NVME_IDC_MN, "ulpo NVMe/TCP target                    ", 40));
	CHECK_EQ(id[NVME_IDC_MDTS], 8);
	CHECK_EQ(id[NVME_IDC_CNTLID] | id[NVME_IDC_CNTLID + 1] << 8, cntlid);
	CHECK_EQ(id[NVME_IDC_SQES], 0x66);
	CHECK_EQ(id[NVME_IDC_CQES], 0x44);
	CHECK_EQ(id[NVME_IDC_MAXCMD], MQES);
	CHECK_EQ(id[NVME_IDC_NN], 1);
	CHECK_EQ(id[NVME_IDC_KAS], 10);
	CHECK_EQ(id[NVME_IDC_SGLS] | id[NVME_IDC_SGLS + 2] << 16, 0x100001);
	CHECK_EQ(id[NVME_IDC_IOCCSZ] | id[NVME_IDC_IOCCSZ + 1] << 8, (8192 + 64) / 16);
	CHECK_EQ(id[NVME_IDC_IORCSZ], 1);
	CHECK_EQ(id[NVME_IDC_VER + 1] << 8 | id[NVME_IDC_VER + 2] << 16, 0x10300);
	CHECK(!strcmp((char *)id + NVME_IDC_SUBNQN, NQN));

	s = th_sqe(NVME_ADMIN_IDENTIFY, 1);
	s.cdw10 = NVME_ID_CNS_NS;
	CHECK_EQ(run(&a, s, NULL, 0, false, id, sizeof(id), &res), 0);
	CHECK_EQ(id[NVME_IDN_NSZE] | id[NVME_IDN_NSZE + 1] << 8 | id[NVME_IDN_NSZE + 2] << 16,
		 RAM / 512);
	CHECK_EQ(id[NVME_IDN_LBAF0 + 2], 9);
	s.nsid = 2;			/* inactive: zeroes, as Linux */
	CHECK_EQ(run(&a, s, NULL, 0, false, id, sizeof(id), &res), 0);
	CHECK_EQ(id[NVME_IDN_NSZE], 0);
	s = th_sqe(NVME_ADMIN_IDENTIFY, 0);
	s.cdw10 = NVME_ID_CNS_NS_ACTIVE_LIST;
	CHECK_EQ(run(&a, s, NULL, 0, false, id, sizeof(id), &res), 0);
	CHECK_EQ(id[0], 1);
	CHECK_EQ(id[4], 0);
	s.cdw10 = 0x55;
	CHECK_EQ(run(&a, s, NULL, 0, false, id, sizeof(id), &res),
		 NVME_SC_INVALID_FIELD | NVME_SC_DNR);

	s = th_sqe(NVME_ADMIN_SET_FEATURES, 0);
	s.cdw10 = NVME_FEAT_NUM_QUEUES;
	s.cdw11 = 31 | 2 << 16;
	CHECK_EQ(run(&a, s, NULL, 0, false, NULL, 0, &res), 0);
	CHECK_EQ(res.cqe.dw0, (MAXQ - 1) | 2 << 16);
	s.opcode = NVME_ADMIN_GET_FEATURES;
	CHECK_EQ(run(&a, s, NULL, 0, false, NULL, 0, &res), 0);
	CHECK_EQ(res.cqe.dw0, (MAXQ - 1) | 2 << 16);
	s.cdw10 = 0x42;
	CHECK_EQ(run(&a, s, NULL, 0, false, NULL, 0, &res), NVME_SC_INVALID_FIELD | NVME_SC_DNR);
	CHECK_EQ(run(&a, th_sqe(NVME_ADMIN_KEEP_ALIVE, 0), NULL, 0, false, NULL, 0, &res), 0);
	CHECK_EQ(run(&a, th_sqe(0xc0, 0), NULL, 0, false, NULL, 0, &res),
		 NVME_SC_INVALID_OPCODE | NVME_SC_DNR);
	CHECK_EQ(run(&a, th_sqe_fabrics(0x42), NULL, 0, false, NULL, 0, &res),
		 NVME_SC_INVALID_OPCODE | NVME_SC_DNR);
	s = th_sqe(NVME_ADMIN_GET_LOG_PAGE, 0xffffffff);
	s.cdw10 = 0x02 | (512 / 4 - 1) << 16;	/* SMART, 512 bytes */
	CHECK_EQ(run(&a, s, NULL, 0, false, id, 512, &res), 0);

	/* SQ head advances by one per completion (sqsize 31: 32 entries). */
	CHECK_EQ(run(&a, th_sqe(NVME_ADMIN_KEEP_ALIVE, 0), NULL, 0, false, NULL, 0, &res), 0);
	{
		uint16_t h = res.cqe.sqhd;

		run(&a, th_sqe(NVME_ADMIN_KEEP_ALIVE, 0), NULL, 0, false, NULL, 0, &res);
		CHECK_EQ(res.cqe.sqhd, (h + 1) % 32);
		CHECK_EQ(res.cqe.sqid, 0);
	}
	/* Shutdown: SHST complete, not ready. */
	CHECK_EQ(th_prop(&a, true, false, NVME_REG_CC, TH_CC_ENABLE | NVME_CC_SHN_NORMAL, &res), 0);
	CHECK_EQ(th_prop(&a, false, false, NVME_REG_CSTS, 0, &res), 0);
	CHECK_EQ(res.cqe.dw0 & (NVME_CSTS_SHST_MASK | NVME_CSTS_RDY), NVME_CSTS_SHST_CMPLT);
	qclose(&a);
}

static void t_aer(void)
{
	struct th_q a;
	struct th_res res;
	struct nvme_sqe s;
	uint16_t held;

	admin(&a, true, 0);
	held = a.cid + 1;
	for (int i = 0; i < 4; i++) {
		s = th_sqe(NVME_ADMIN_ASYNC_EVENT, 0);
		CHECK_EQ(th_send_cmd(&a, &s, NULL, 0, false), 0);
	}
	/* Held: the next CQE is the Keep Alive's. */
	CHECK_EQ(run(&a, th_sqe(NVME_ADMIN_KEEP_ALIVE, 0), NULL, 0, false, NULL, 0, &res), 0);
	CHECK_EQ(run(&a, th_sqe(NVME_ADMIN_ASYNC_EVENT, 0), NULL, 0, false, NULL, 0, &res),
		 NVME_STATUS(NVME_SCT_CMD_SPECIFIC, 0x05) | NVME_SC_DNR);
	/* A cid still held is refused. */
	s = th_sqe(NVME_ADMIN_KEEP_ALIVE, 0);
	s.flags = NVME_CMD_FLAGS_SGL;
	s.cid = held;
	memset(&res, 0, sizeof(res));
	CHECK_EQ(th_send_cmd(&a, &s, NULL, 0, true), 0);
	CHECK_EQ(th_wait(&a, held, NULL, 0, NULL, 0, &res), 0);
	CHECK_EQ(th_status(&res), NVME_SC_CID_CONFLICT | NVME_SC_DNR);
	qclose(&a);
}

static void t_connect_errors(void)
{
	const uint16_t inval = NVME_STATUS(NVME_SCT_CMD_SPECIFIC, 0x82) | NVME_SC_DNR;
	struct nvmf_connect_data d;
	struct th_q a, q, q2;
	struct th_res res;
	int cntlid = admin(&a, true, 0);
	struct {
		uint16_t cntlid, qid, sqsize;
		const char *subnqn, *hostnqn;
		uint16_t status;
		uint32_t dw0;
	} c[] = {
		{ (uint16_t)(cntlid + 100), 1, 31, NQN, TH_HOSTNQN, inval, 0x10010 },
		{ (uint16_t)cntlid, 1, 31, NQN, "nqn.2014-08.org.example:other", inval, 0x10010 },
		{ (uint16_t)cntlid, 1, 31, "nqn.2026-11.io.ulpo:nope", TH_HOSTNQN, inval, 0x10100 },
		{ (uint16_t)cntlid, 1, MQES, NQN, TH_HOSTNQN, inval, 44 },
		{ (uint16_t)cntlid, 1, 0, NQN, TH_HOSTNQN, inval, 44 },
		{ (uint16_t)cntlid, MAXQ + 1, 31, NQN, TH_HOSTNQN, inval, 42 },
		{ 7, 0, 31, NQN, TH_HOSTNQN, inval, 0x10010 },	/* admin: cntlid must be 0xffff */
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		th_init(&q, tcp(g_port));
		CHECK_EQ(th_icreq(&q, false, false, 0), 0);
		th_connect_data(&d, c[i].cntlid, c[i].subnqn, c[i].hostnqn);
		CHECK_EQ(th_connect(&q, c[i].qid, c[i].sqsize, 0, 0, &d, false, &res), 0);
		CHECK_EQ(th_status(&res), c[i].status);
		CHECK_EQ(res.cqe.dw0, c[i].dw0);
		/* Still unconnected: anything but a Connect is an invalid opcode. */
		CHECK_EQ(run(&q, th_sqe(NVME_ADMIN_KEEP_ALIVE, 0), NULL, 0, false, NULL, 0, &res),
			 NVME_SC_INVALID_OPCODE | NVME_SC_DNR);
		qclose(&q);
	}
	/* recfmt 1 */
	th_init(&q, tcp(g_port));
	CHECK_EQ(th_icreq(&q, false, false, 0), 0);
	{
		struct nvme_sqe s = th_sqe_fabrics(NVME_FCTYPE_CONNECT);

		th_connect_data(&d, (uint16_t)cntlid, NQN, TH_HOSTNQN);
		s.cdw10 = 1 | 1u << 16;
		s.cdw11 = 31;
		CHECK_EQ(run(&q, s, &d, sizeof(d), true, NULL, 0, &res),
			 NVME_STATUS(NVME_SCT_CMD_SPECIFIC, 0x80) | NVME_SC_DNR);
	}
	/* The Connect's data by R2T, then the same qid again elsewhere. */
	th_connect_data(&d, (uint16_t)cntlid, NQN, TH_HOSTNQN);
	CHECK_EQ(th_connect(&q, 1, 31, 0, 0, &d, true, &res), 0);
	CHECK_EQ(th_status(&res), 0);
	CHECK_EQ(res.r2t, 1);
	CHECK_EQ(res.cqe.sqid, 1);
	CHECK_EQ(run(&q, th_sqe_rw(NVME_CMD_FLUSH, 1, 0, 1), NULL, 0, false, NULL, 0, &res), 0);
	CHECK_EQ(run(&q, th_sqe_fabrics(NVME_FCTYPE_CONNECT), NULL, 0, false, NULL, 0, &res),
		 NVME_SC_INVALID_OPCODE | NVME_SC_DNR);
	th_init(&q2, tcp(g_port));
	CHECK_EQ(th_icreq(&q2, false, false, 0), 0);
	CHECK_EQ(th_connect(&q2, 1, 31, 0, 0, &d, false, &res), 0);
	CHECK_EQ(th_status(&res), NVME_SC_CMD_SEQ_ERROR | NVME_SC_DNR);
	qclose(&q2);
	/* A queue that ended frees its qid. */
	qclose(&q);
	usleep(50000);
	CHECK(ioq(&q, cntlid, 1, false, false, 0, 0));
	qclose(&q);
	qclose(&a);
}

static void t_io_errors(void)
{
	struct th_q a, q;
	struct th_res res;
	uint8_t buf[8192] = { 0 };
	struct nvme_sqe s;
	int cntlid = admin(&a, false, 0);

	/* I/O before CC.EN */
	CHECK(ioq(&q, cntlid, 1, false, false, 0, 0));
	CHECK_EQ(rd(&q, 0, buf, 4096, &res), NVME_SC_CMD_SEQ_ERROR | NVME_SC_DNR);
	CHECK_EQ(th_prop(&a, true, false, NVME_REG_CC, TH_CC_ENABLE, &res), 0);
	CHECK_EQ(rd(&q, 0, buf, 4096, &res), 0);
	s = th_sqe_rw(NVME_CMD_WRITE, 2, 0, 8);
	CHECK_EQ(run(&q, s, buf, 4096, true, NULL, 0, &res), NVME_SC_INVALID_NS | NVME_SC_DNR);
	CHECK_EQ(wr(&q, RAM / 512 - 4, buf, 4096, true, &res), NVME_SC_LBA_RANGE | NVME_SC_DNR);
	CHECK_EQ(rd(&q, ~0ull - 2, buf, 4096, &res), NVME_SC_LBA_RANGE | NVME_SC_DNR);
	CHECK_EQ(wr(&q, RAM / 512 - 8, buf, 4096, true, &res), 0);
	/* SGL length against NLB */
	s = th_sqe_rw(NVME_CMD_WRITE, 1, 0, 4);
	CHECK_EQ(run(&q, s, buf, 4096, true, NULL, 0, &res), NVME_SC_SGL_INVALID_DATA | NVME_SC_DNR);
	/* a read with an in-capsule descriptor; more than MDTS */
	s = th_sqe_rw(NVME_CMD_READ, 1, 0, 8);
	{
		struct nvme_tcp_cmd c = capsule(&q, s, 4096, true);

		memset(&res, 0, sizeof(res));
		CHECK_EQ(send_raw(&q, &c, NULL, 0, false, false), 0);
		CHECK_EQ(th_wait(&q, c.sqe.cid, NULL, 0, NULL, 0, &res), 0);
		CHECK_EQ(th_status(&res), NVME_SC_INVALID_FIELD | NVME_SC_DNR);
	}
	s = th_sqe_rw(NVME_CMD_READ, 1, 0, 4096);
	CHECK_EQ(run(&q, s, NULL, 0, false, NULL, 2u << 20, &res), NVME_SC_INVALID_FIELD | NVME_SC_DNR);
	/* in-capsule data beyond IOCCSZ: refused, the stream stays in step */
	{
		uint8_t *big = calloc(1, 12288);

		CHECK_EQ(wr(&q, 0, big, 12288, true, &res), SC_SGL_INVALID_OFFSET | NVME_SC_DNR);
		free(big);
	}
	CHECK_EQ(run(&q, th_sqe(0x05, 1), NULL, 0, false, NULL, 0, &res),
		 NVME_SC_INVALID_OPCODE | NVME_SC_DNR);
	CHECK_EQ(run(&q, th_sqe_fabrics(NVME_FCTYPE_PROPERTY_GET), NULL, 0, false, NULL, 0, &res),
		 NVME_SC_INVALID_OPCODE | NVME_SC_DNR);
	CHECK_EQ(run(&q, th_sqe(NVME_CMD_FLUSH, 1), NULL, 0, false, NULL, 0, &res), 0);
	CHECK_EQ(res.cqe.sqid, 1);
	qclose(&q);
	qclose(&a);
}

/* The brief's first case: a bad PDU type ends that connection only. */
static void t_bad_type(void)
{
	struct th_q a, good, bad;
	struct th_res res;
	uint8_t *w = rnd_buf(8192), r[8192];
	struct nvme_tcp_hdr h = { .type = 0x42, .hlen = 24, .plen = 24 };
	uint8_t raw[24] = { 0 };
	int cntlid = admin(&a, true, 0);

	CHECK(ioq(&good, cntlid, 1, true, true, 0, 0));
	CHECK(ioq(&bad, cntlid, 2, false, false, 0, 0));
	memcpy(raw, &h, sizeof(h));
	CHECK_EQ(write(bad.tc.fd, raw, sizeof(raw)), (ssize_t)sizeof(raw));
	expect_term(&bad, NVME_TCP_FES_INVALID_PDU_HDR, 0);
	qclose(&bad);
	/* A PDU only a controller sends (C2HData) */
	CHECK(ioq(&bad, cntlid, 2, false, false, 0, 0));
	{
		struct nvme_tcp_data d = { .hdr = { .type = NVME_TCP_C2H_DATA, .hlen = 24 } };

		CHECK_EQ(send_raw(&bad, &d, w, 512, false, false), 0);
	}
	expect_term(&bad, NVME_TCP_FES_INVALID_PDU_HDR, 0);
	qclose(&bad);
	CHECK_EQ(wr(&good, 64, w, sizeof(r), true, &res), 0);
	CHECK_EQ(rd(&good, 64, r, sizeof(r), &res), 0);
	CHECK(!memcmp(w, r, sizeof(r)));
	qclose(&good);
	qclose(&a);
	free(w);
}

/* PDU sequence and ICReq field errors. */
static void t_sequence(void)
{
	struct th_q q;
	struct nvme_tcp_icreq ic = { .hdr = { .type = NVME_TCP_ICREQ, .hlen = 128, .plen = 128 } };
	struct nvme_tcp_cmd c = { .hdr = { .type = NVME_TCP_CMD, .hlen = 72, .plen = 72 } };

	th_init(&q, tcp(g_port));	/* a command before ICReq */
	CHECK_EQ(write(q.tc.fd, &c, sizeof(c)), (ssize_t)sizeof(c));
	expect_term(&q, NVME_TCP_FES_PDU_SEQ_ERR, ~0u);
	qclose(&q);
	th_init(&q, tcp(g_port));	/* ICReq twice */
	CHECK_EQ(th_icreq(&q, false, false, 0), 0);
	CHECK_EQ(write(q.tc.fd, &ic, sizeof(ic)), (ssize_t)sizeof(ic));
	expect_term(&q, NVME_TCP_FES_PDU_SEQ_ERR, ~0u);
	qclose(&q);
	th_init(&q, tcp(g_port));	/* PFV 1 */
	ic.pfv = 1;
	CHECK_EQ(write(q.tc.fd, &ic, sizeof(ic)), (ssize_t)sizeof(ic));
	expect_term(&q, NVME_TCP_FES_UNSUPPORTED_PARAM, 8);
	qclose(&q);
	th_init(&q, tcp(g_port));	/* HPDA beyond 31 */
	ic.pfv = 0;
	ic.hpda = 32;
	CHECK_EQ(write(q.tc.fd, &ic, sizeof(ic)), (ssize_t)sizeof(ic));
	expect_term(&q, NVME_TCP_FES_INVALID_PDU_HDR, 10);
	qclose(&q);
	th_init(&q, tcp(g_port));	/* a bad HLEN */
	ic.hpda = 0;
	ic.hdr.hlen = 127;
	CHECK_EQ(write(q.tc.fd, &ic, sizeof(ic)), (ssize_t)sizeof(ic));
	expect_term(&q, NVME_TCP_FES_INVALID_PDU_HDR, 2);
	qclose(&q);
	th_init(&q, tcp(g_port));	/* PLEN beyond anything the target takes */
	CHECK_EQ(th_icreq(&q, false, false, 0), 0);
	c.hdr.plen = 64u << 20;
	c.hdr.pdo = 72;
	CHECK_EQ(write(q.tc.fd, &c, sizeof(c)), (ssize_t)sizeof(c));
	expect_term(&q, NVME_TCP_FES_INVALID_PDU_HDR, 4);
	qclose(&q);
	th_init(&q, tcp(g_port));	/* the host's TermReq: closed, no answer */
	CHECK_EQ(th_icreq(&q, false, false, 0), 0);
	{
		struct nvme_tcp_term t = { .hdr = { .type = NVME_TCP_H2C_TERM, .hlen = 24, .plen = 24 },
					   .fes = 1 };

		CHECK_EQ(write(q.tc.fd, &t, sizeof(t)), (ssize_t)sizeof(t));
	}
	expect_eof(&q);
	qclose(&q);
	/* ... also with header digests on, though a TermReq has none (24 bytes in all) */
	th_init(&q, tcp(g_port));
	CHECK_EQ(th_icreq(&q, true, false, 0), 0);
	{
		struct nvme_tcp_term t = { .hdr = { .type = NVME_TCP_H2C_TERM, .hlen = 24, .plen = 24 },
					   .fes = 1 };

		CHECK_EQ(write(q.tc.fd, &t, sizeof(t)), (ssize_t)sizeof(t));
	}
	expect_eof(&q);
	qclose(&q);
}

static void t_hdgst(void)
{
	struct ulpo_nvmet_stats st0, st1;
	struct th_q a, q;
	int cntlid = admin(&a, true, 0);
	struct nvme_tcp_cmd c;

	get_stats(&st0);
	CHECK(ioq(&q, cntlid, 1, true, false, 0, 0));
	c = capsule(&q, th_sqe(NVME_CMD_FLUSH, 1), 0, false);
	CHECK_EQ(send_raw(&q, &c, NULL, 0, true, false), 0);
	expect_term(&q, NVME_TCP_FES_HDR_DIGEST_ERR, ~0u);
	get_stats(&st1);
	CHECK_EQ(st1.hdgst_errors - st0.hdgst_errors, 1);
	CHECK_EQ(st1.term_reqs_sent - st0.term_reqs_sent, 1);
	qclose(&q);
	qclose(&a);
}

static void t_ddgst(void)
{
	struct ulpo_nvmet_stats st0, st1;
	struct th_q a, q;
	struct th_res res;
	uint8_t *A = rnd_buf(4096), *B = rnd_buf(4096), *big = rnd_buf(48 * 1024), r[4096];
	uint8_t *rb = malloc(48 * 1024);
	int cntlid = admin(&a, true, 0);
	struct nvme_tcp_cmd c;

	get_stats(&st0);
	CHECK(ioq(&q, cntlid, 1, true, true, 0, 0));
	CHECK_EQ(wr(&q, 100, A, 4096, true, &res), 0);
	/* In-capsule write with a bad data digest: that command fails, nothing written. */
	c = capsule(&q, th_sqe_rw(NVME_CMD_WRITE, 1, 100, 8), 4096, true);
	memset(&res, 0, sizeof(res));
	CHECK_EQ(send_raw(&q, &c, B, 4096, false, true), 0);
	CHECK_EQ(th_wait(&q, c.sqe.cid, NULL, 0, NULL, 0, &res), 0);
	CHECK_EQ(th_status(&res), NVME_SC_DATA_XFER_ERROR);
	CHECK_EQ(rd(&q, 100, r, 4096, &res), 0);
	CHECK(!memcmp(r, A, 4096));
	CHECK_EQ(wr(&q, 100, B, 4096, true, &res), 0);
	CHECK_EQ(rd(&q, 100, r, 4096, &res), 0);
	CHECK(!memcmp(r, B, 4096));
	/* By R2T: the second of three H2CData damaged; the command fails at its end. */
	c = capsule(&q, th_sqe_rw(NVME_CMD_WRITE, 1, 200, 96), 48 * 1024, false);
	CHECK_EQ(send_raw(&q, &c, NULL, 0, false, false), 0);
	{
		struct nvme_tcp_r2t t = next_r2t(&q);

		CHECK_EQ(t.r2tl, 48 * 1024);
		for (uint32_t off = 0; off < 48 * 1024; off += MAXH2C) {
			struct nvme_tcp_data d = { .hdr = { .type = NVME_TCP_H2C_DATA, .hlen = 24 } };

			d.hdr.flags = off + MAXH2C == 48 * 1024 ? NVME_TCP_F_DATA_LAST : 0;
			d.cccid = t.cccid;
			d.ttag = t.ttag;
			d.datao = off;
			d.datal = MAXH2C;
			CHECK_EQ(send_raw(&q, &d, big + off, MAXH2C, false, off == MAXH2C), 0);
		}
		memset(&res, 0, sizeof(res));
		CHECK_EQ(th_wait(&q, c.sqe.cid, NULL, 0, NULL, 0, &res), 0);
		CHECK_EQ(th_status(&res), NVME_SC_DATA_XFER_ERROR);
	}
	CHECK_EQ(wr(&q, 200, big, 48 * 1024, false, &res), 0);
	CHECK_EQ(rd(&q, 200, rb, 48 * 1024, &res), 0);
	CHECK(!memcmp(rb, big, 48 * 1024));
	get_stats(&st1);
	CHECK_EQ(st1.ddgst_errors - st0.ddgst_errors, 2);
	CHECK_EQ(st1.term_reqs_sent - st0.term_reqs_sent, 0);
	qclose(&q);
	qclose(&a);
	free(A);
	free(B);
	free(big);
	free(rb);
}

/* H2CData that breaks the rules: each gets a TermReq with its FES (and FEI). */
static void t_h2c_errors(void)
{
	struct th_q a, q;
	uint8_t *buf = rnd_buf(64 * 1024);
	int cntlid = admin(&a, true, 0);
	enum { OOR, NONCONTIG, TTAG, CCCID, LIMIT, LAST, DATAL, DATAL0 };
	struct {
		int kind;
		uint16_t fes;
		uint32_t fei;
	} c[] = {
		{ OOR, NVME_TCP_FES_DATA_OUT_OF_RANGE, ~0u },
		{ NONCONTIG, NVME_TCP_FES_DATA_OUT_OF_RANGE, ~0u },
		{ TTAG, NVME_TCP_FES_INVALID_PDU_HDR, 10 },
		{ CCCID, NVME_TCP_FES_INVALID_PDU_HDR, 8 },
		{ LIMIT, NVME_TCP_FES_R2T_LIMIT_EXCEEDED, ~0u },
		{ LAST, NVME_TCP_FES_INVALID_PDU_HDR, 1 },
		{ DATAL, NVME_TCP_FES_INVALID_PDU_HDR, 16 },
		{ DATAL0, NVME_TCP_FES_INVALID_PDU_HDR, 16 },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct nvme_tcp_data d = { .hdr = { .type = NVME_TCP_H2C_DATA, .hlen = 24 } };
		uint32_t len = 8192, dlen;
		struct nvme_tcp_cmd cmd;
		struct nvme_tcp_r2t t;

		if (!ioq(&q, cntlid, 1, i & 1, i & 1, 0, 0))
			break;
		if (c[i].kind == LIMIT)
			len = 2 * MAXH2C;
		cmd = capsule(&q, th_sqe_rw(NVME_CMD_WRITE, 1, 0, len / 512), len, false);
		CHECK_EQ(send_raw(&q, &cmd, NULL, 0, false, false), 0);
		t = next_r2t(&q);
		CHECK_EQ(t.r2tl, len);
		CHECK_EQ(t.cccid, cmd.sqe.cid);
		d.cccid = t.cccid;
		d.ttag = t.ttag;
		d.datal = dlen = 4096;
		switch (c[i].kind) {
		case OOR:
			d.datao = 4096;
			d.datal = dlen = 8192;
			break;
		case NONCONTIG:
			CHECK_EQ(send_raw(&q, &d, buf, 4096, false, false), 0);
			break;		/* then offset 0 again */
		case TTAG:
			d.ttag++;
			break;
		case CCCID:
			d.cccid++;
			break;
		case LIMIT:
			d.datal = dlen = MAXH2C + 4096;
			break;
		case LAST:
			d.hdr.flags = NVME_TCP_F_DATA_LAST;
			break;
		case DATAL:
			d.datal = 2048;
			break;
		case DATAL0:
			d.datal = 0;
			break;
		}
		CHECK_EQ(send_raw(&q, &d, buf, dlen, false, false), 0);
		expect_term(&q, c[i].fes, c[i].fei);
		qclose(&q);
		usleep(20000);		/* its qid is free again when the target has closed */
	}
	/* An H2CData no R2T asked for */
	if (ioq(&q, cntlid, 1, false, false, 0, 0)) {
		struct nvme_tcp_data d = { .hdr = { .type = NVME_TCP_H2C_DATA, .hlen = 24,
						    .flags = NVME_TCP_F_DATA_LAST },
					   .datal = 512 };

		CHECK_EQ(send_raw(&q, &d, buf, 512, false, false), 0);
		expect_term(&q, NVME_TCP_FES_INVALID_PDU_HDR, 10);
		qclose(&q);
	}
	qclose(&a);
	free(buf);
}

static void t_r2t(void)
{
	struct ulpo_nvmet_stats st0, st1;
	struct th_q a, q;
	struct th_res res, r1, r2;
	size_t n1 = 64 * 1024, n2 = 100 * 1024;
	uint8_t *w1 = rnd_buf(n1), *w2 = rnd_buf(n2), *r = malloc(n2);
	int cntlid = admin(&a, true, 0);

	get_stats(&st0);
	CHECK(ioq(&q, cntlid, 1, false, true, 0, 0));
	CHECK_EQ(wr(&q, 1000, w1, n1, false, &res), 0);
	CHECK_EQ(res.r2t, 1);
	CHECK_EQ(res.h2c, n1 / MAXH2C);
	CHECK_EQ(rd(&q, 1000, r, n1, &res), 0);
	CHECK(!memcmp(r, w1, n1));
	CHECK_EQ(wr(&q, 2000, w2, n2, false, &res), 0);
	CHECK_EQ(res.h2c, (n2 + MAXH2C - 1) / MAXH2C);
	CHECK_EQ(rd(&q, 2000, r, n2, &res), 0);
	CHECK(!memcmp(r, w2, n2));
	get_stats(&st1);
	CHECK_EQ(st1.r2ts - st0.r2ts, 2);
	CHECK_EQ(st1.write_bytes - st0.write_bytes, n1 + n2);

	/* Two writes in flight; their data in the opposite order; CQEs in any order. */
	{
		struct nvme_sqe s1 = th_sqe_rw(NVME_CMD_WRITE, 1, 3000, 16);
		struct nvme_sqe s2 = th_sqe_rw(NVME_CMD_WRITE, 1, 3100, 32);
		struct nvme_tcp_r2t t1, t2;
		int got = 0;

		CHECK_EQ(th_send_cmd(&q, &s1, NULL, 8192, false), 0);
		CHECK_EQ(th_send_cmd(&q, &s2, NULL, 16384, false), 0);
		t1 = next_r2t(&q);
		t2 = next_r2t(&q);
		CHECK_EQ(t1.cccid, s1.cid);
		CHECK_EQ(t2.cccid, s2.cid);
		CHECK(t1.ttag != t2.ttag);
		CHECK_EQ(th_send_h2c(&q, t2.cccid, t2.ttag, 0, w2, 16384, true), 0);
		CHECK_EQ(th_send_h2c(&q, t1.cccid, t1.ttag, 0, w1, 8192, true), 0);
		for (int i = 0; i < 2; i++) {
			struct nvme_tcp_rsp rsp;
			uint16_t f;
			uint32_t e;

			memset(&rsp, 0, sizeof(rsp));
			CHECK_EQ(nvme_tcp_recv_hdr(&q.tc, &f, &e), 0);
			memcpy(&rsp, q.tc.hdr, sizeof(rsp));
			CHECK_EQ(rsp.hdr.type, NVME_TCP_RSP);
			CHECK_EQ(rsp.cqe.status, 0);
			got |= rsp.cqe.cid == s1.cid ? 1 : rsp.cqe.cid == s2.cid ? 2 : 4;
		}
		CHECK_EQ(got, 3);
		CHECK_EQ(rd(&q, 3000, r, 8192, &r1), 0);
		CHECK(!memcmp(r, w1, 8192));
		CHECK_EQ(rd(&q, 3100, r, 16384, &r2), 0);
		CHECK(!memcmp(r, w2, 16384));
	}
	qclose(&q);
	qclose(&a);
	free(w1);
	free(w2);
	free(r);
}

static void t_read_1mib(void)
{
	struct ulpo_nvmet_stats st0, st1;
	struct th_q a, q;
	struct th_res res;
	size_t n = 1u << 20;
	uint8_t *w = rnd_buf(n), *r = malloc(n);
	int cntlid = admin(&a, true, 0);

	CHECK(ioq(&q, cntlid, 1, true, true, 0, 0));
	CHECK_EQ(wr(&q, 8192, w, n, false, &res), 0);
	CHECK_EQ(res.h2c, n / MAXH2C);
	get_stats(&st0);
	memset(r, 0, n);
	CHECK_EQ(rd(&q, 8192, r, n, &res), 0);
	CHECK_EQ(res.c2h, 8);		/* 128 KiB each */
	CHECK(!res.c2h_bad);
	CHECK_EQ(res.last_c2h_flags & (NVME_TCP_F_DATA_LAST | NVME_TCP_F_DATA_SUCCESS),
		 NVME_TCP_F_DATA_LAST);
	CHECK(!memcmp(r, w, n));
	get_stats(&st1);
	CHECK_EQ(st1.c2h_pdus - st0.c2h_pdus, 8);
	CHECK_EQ(st1.read_bytes - st0.read_bytes, n);
	qclose(&q);
	qclose(&a);
	free(w);
	free(r);
}

/* HPDA: data the target sends starts at a multiple of (HPDA + 1) * 4 bytes. */
static void t_hpda(void)
{
	static const uint8_t hpdas[] = { 1, 3, 31 };
	struct th_q a, q;
	struct th_res res;
	size_t n = 200 * 1024;
	uint8_t *w = rnd_buf(n), *r = malloc(n);
	int cntlid = admin(&a, true, 0);

	for (size_t i = 0; i < sizeof(hpdas); i++) {
		if (!ioq(&q, cntlid, (uint16_t)(1 + i), i != 1, true, hpdas[i], 0))
			continue;
		CHECK_EQ(wr(&q, 16384 + i * 1024, w, n, false, &res), 0);
		memset(r, 0, n);
		CHECK_EQ(rd(&q, 16384 + i * 1024, r, n, &res), 0);
		CHECK(!res.c2h_bad);
		CHECK(!memcmp(r, w, n));
		qclose(&q);
	}
	qclose(&a);
	free(w);
	free(r);
}

/* CATTR "disable SQ flow control": SQHD 0xffff on the Connect, reads end with the SUCCESS
 * flag and no CQE (the target runs with c2h_success). */
static void t_no_sq_flow(void)
{
	struct ulpo_nvmet_stats st0, st1;
	struct nvmf_connect_data d;
	struct th_q a, q;
	struct th_res res;
	uint8_t *w = rnd_buf(300 * 1024), *r = malloc(300 * 1024);
	int cntlid = admin(&a, true, 0);

	get_stats(&st0);
	th_init(&q, tcp(g_port));
	CHECK_EQ(th_icreq(&q, true, true, 0), 0);
	th_connect_data(&d, (uint16_t)cntlid, NQN, TH_HOSTNQN);
	CHECK_EQ(th_connect(&q, 1, 31, 0x4, 0, &d, false, &res), 0);
	CHECK_EQ(th_status(&res), 0);
	CHECK_EQ(res.cqe.sqhd, 0xffff);
	CHECK_EQ(wr(&q, 500, w, 300 * 1024, false, &res), 0);
	CHECK_EQ(res.cqe.sqhd, 0);
	CHECK_EQ(rd(&q, 500, r, 300 * 1024, &res), 0);
	CHECK(res.success_flag);
	CHECK_EQ(res.c2h, 3);
	CHECK(!res.c2h_bad);
	CHECK(!memcmp(r, w, 300 * 1024));
	/* The next PDU is the next command's: no CapsuleResp followed the read. */
	CHECK_EQ(run(&q, th_sqe(NVME_CMD_FLUSH, 1), NULL, 0, false, NULL, 0, &res), 0);
	CHECK_EQ(res.c2h + res.r2t, 0);
	/* A failed read still gets its CQE. */
	CHECK_EQ(rd(&q, RAM / 512, r, 512, &res), NVME_SC_LBA_RANGE | NVME_SC_DNR);
	get_stats(&st1);
	CHECK_EQ(st1.c2h_success - st0.c2h_success, 1);
	qclose(&q);
	qclose(&a);
	free(w);
	free(r);
}

static void t_kato(void)
{
	struct ulpo_nvmet_stats st0, st1;
	struct th_q a, q;
	struct th_res res;
	int cntlid = admin(&a, true, 300);

	get_stats(&st0);
	CHECK(ioq(&q, cntlid, 1, false, false, 0, 0));
	/* Keep Alive every 100 ms keeps it for a second. */
	for (int i = 0; i < 10; i++) {
		CHECK_EQ(run(&a, th_sqe(NVME_ADMIN_KEEP_ALIVE, 0), NULL, 0, false, NULL, 0, &res), 0);
		usleep(100000);
	}
	/* Then silence: admin and I/O queue are closed after 2 x KATO. */
	usleep(900000);
	expect_eof(&a);
	expect_eof(&q);
	get_stats(&st1);
	CHECK_EQ(st1.kato_expired - st0.kato_expired, 1);
	qclose(&q);
	qclose(&a);
}

struct worker {
	int cntlid;
	uint16_t qid;
	uint64_t seed;
	int errors;
};

/* One I/O queue: random writes (in-capsule or R2T) and reads of its own 2 MiB region,
 * checked against what it wrote. */
static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	size_t region = 2u << 20;
	uint8_t *shadow = calloc(1, region), *buf = malloc(256 * 1024);
	uint64_t base = 32768 + (uint64_t)wk->qid * (region / 512);
	struct th_q q;
	struct th_res res;

	if (th_ioq(&q, th_tcp(g_port), NQN, (uint16_t)wk->cntlid, wk->qid, wk->qid & 1,
		   wk->qid & 2, 0, 0)) {
		wk->errors++;
		goto out;
	}
	for (int i = 0; i < 150; i++) {
		uint64_t x = t_rand(&wk->seed);
		size_t len = (1 + x % 512) * 512, off = (x >> 16) % (region / 512 - len / 512) * 512;
		struct nvme_sqe s;

		if (x & 1ull << 40) {
			t_fill(&wk->seed, shadow + off, len);
			s = th_sqe_rw(NVME_CMD_WRITE, 1, base + off / 512, (uint32_t)(len / 512));
			if (th_exec(&q, &s, shadow + off, len, len <= 8192 && (x & 1ull << 41), NULL, 0,
				    &res) || th_status(&res))
				wk->errors++;
		} else {
			s = th_sqe_rw(NVME_CMD_READ, 1, base + off / 512, (uint32_t)(len / 512));
			if (th_exec(&q, &s, NULL, 0, false, buf, len, &res) || th_status(&res) ||
			    memcmp(buf, shadow + off, len))
				wk->errors++;
		}
	}
	close(q.tc.fd);
out:
	free(shadow);
	free(buf);
	return NULL;
}

static void t_concurrent(void)
{
	struct worker wk[MAXQ];
	pthread_t th[MAXQ];
	struct th_q a;
	struct th_res res;
	int cntlid = admin(&a, true, 0);
	uint8_t zero[4096] = { 0 };

	/* Zero the regions first: other tests may have written there. */
	for (int i = 1; i <= MAXQ; i++) {
		struct th_q q;

		if (!ioq(&q, cntlid, 1, false, false, 0, 0))
			break;
		for (uint64_t b = 0; b < (2u << 20) / 4096; b++)
			wr(&q, 32768 + (uint64_t)i * 4096 + b * 8, zero, 4096, true, &res);
		qclose(&q);
		usleep(10000);
	}
	for (int i = 0; i < MAXQ; i++) {
		wk[i] = (struct worker){ .cntlid = cntlid, .qid = (uint16_t)(i + 1),
					 .seed = g_seed + (uint64_t)i * 7919 };
		pthread_create(&th[i], NULL, worker_main, &wk[i]);
	}
	for (int i = 0; i < MAXQ; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(wk[i].errors, 0);
	}
	qclose(&a);
}

/* Many connections at once, most idle; all served, all gone after close. */
static void t_many(void)
{
	enum { N = 100 };
	struct th_q q[N];
	struct ulpo_nvmet_stats st0, st1;

	get_stats(&st0);
	for (int i = 0; i < N; i++) {
		th_init(&q[i], tcp(g_port));
		CHECK_EQ(th_icreq(&q[i], i & 1, i & 2, 0), 0);
	}
	for (int i = 0; i < N; i++)
		qclose(&q[i]);
	get_stats(&st1);
	CHECK_EQ(st1.connections - st0.connections, N);
}

/* Stop with connections open: returns, and the hosts see their connections end. */
static void t_stop(void)
{
	struct ulpo_nvmet_opts o = { .listen = "127.0.0.1:0", .ram_bytes = 1u << 20 };
	struct ulpo_nvmet *t;
	struct th_q a, q;
	int saved = g_port, cntlid;
	int64_t t0;

	CHECK_EQ(ulpo_nvmet_start(&o, &t), 0);
	g_port = ulpo_nvmet_port(t);
	cntlid = th_admin(&a, tcp(g_port), ULPO_NVME_DEFAULT_SUBNQN, 0, true);
	CHECK(cntlid > 0);
	CHECK_EQ(th_ioq(&q, tcp(g_port), ULPO_NVME_DEFAULT_SUBNQN, (uint16_t)cntlid, 1, 0, 0, 0, 0),
		 0);
	{
		struct nvme_sqe s = th_sqe_rw(NVME_CMD_WRITE, 1, 0, 64);

		/* a write waiting for its data */
		CHECK_EQ(th_send_cmd(&q, &s, NULL, 32768, false), 0);
		(void)next_r2t(&q);
	}
	t0 = now_ms();
	ulpo_nvmet_stop(t);
	CHECK(now_ms() - t0 < 2000);
	expect_eof(&q);
	expect_eof(&a);
	qclose(&q);
	qclose(&a);
	g_port = saved;
}

/* A file namespace: what the host writes is in the file. */
static void t_file(void)
{
	char path[] = "/tmp/ulpo-nvmet-XXXXXX";
	int fd = mkstemp(path), cntlid;
	struct ulpo_nvmet_opts o = { .listen = "127.0.0.1:0", .file = path, .lba_size = 4096 };
	struct ulpo_nvmet *t;
	struct th_q a, q;
	struct th_res res;
	uint8_t *w = rnd_buf(64 * 1024), *r = malloc(64 * 1024);
	int saved = g_port;
	uint8_t id[4096];
	struct nvme_sqe s;

	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, (1u << 20) + 1000), 0);	/* rounded down to blocks */
	CHECK_EQ(ulpo_nvmet_start(&o, &t), 0);
	g_port = ulpo_nvmet_port(t);
	cntlid = th_admin(&a, tcp(g_port), ULPO_NVME_DEFAULT_SUBNQN, 0, true);
	CHECK(cntlid > 0);
	s = th_sqe(NVME_ADMIN_IDENTIFY, 1);
	s.cdw10 = NVME_ID_CNS_NS;
	CHECK_EQ(run(&a, s, NULL, 0, false, id, sizeof(id), &res), 0);
	CHECK_EQ(id[NVME_IDN_NSZE] | id[NVME_IDN_NSZE + 1] << 8 | id[NVME_IDN_NSZE + 2] << 16, 256);
	CHECK_EQ(id[NVME_IDN_LBAF0 + 2], 12);
	CHECK_EQ(th_ioq(&q, tcp(g_port), ULPO_NVME_DEFAULT_SUBNQN, (uint16_t)cntlid, 1, 0, 0, 0, 0),
		 0);
	s = th_sqe_rw(NVME_CMD_WRITE, 1, 3, 16);
	CHECK_EQ(run(&q, s, w, 64 * 1024, false, NULL, 0, &res), 0);
	s = th_sqe_rw(NVME_CMD_READ, 1, 3, 16);
	CHECK_EQ(run(&q, s, NULL, 0, false, r, 64 * 1024, &res), 0);
	CHECK(!memcmp(r, w, 64 * 1024));
	CHECK_EQ(run(&q, th_sqe(NVME_CMD_FLUSH, 1), NULL, 0, false, NULL, 0, &res), 0);
	s = th_sqe_rw(NVME_CMD_READ, 1, 250, 8);
	CHECK_EQ(run(&q, s, NULL, 0, false, r, 32768, &res), NVME_SC_LBA_RANGE | NVME_SC_DNR);
	memset(r, 0, 64 * 1024);
	CHECK_EQ(pread(fd, r, 64 * 1024, 3 * 4096), 64 * 1024);
	CHECK(!memcmp(r, w, 64 * 1024));
	qclose(&q);
	qclose(&a);
	ulpo_nvmet_stop(t);
	close(fd);
	unlink(path);
	g_port = saved;
	free(w);
	free(r);
}

static void t_bad_opts(void)
{
	struct ulpo_nvmet_opts o = { .listen = "127.0.0.1:0", .ram_bytes = 1u << 20 };
	struct ulpo_nvmet *t = NULL;

	o.lba_size = 1000;
	CHECK_EQ(ulpo_nvmet_start(&o, &t), -EINVAL);
	o.lba_size = 0;
	o.file = "/nonexistent";
	CHECK_EQ(ulpo_nvmet_start(&o, &t), -EINVAL);	/* both RAM and file */
	o.ram_bytes = 0;
	CHECK_EQ(ulpo_nvmet_start(&o, &t), -ENOENT);
	o.file = NULL;
	o.ram_bytes = 100;				/* less than a block */
	CHECK_EQ(ulpo_nvmet_start(&o, &t), -EINVAL);
	o.ram_bytes = 1u << 20;
	o.listen = "127.0.0.1:99999";
	CHECK_EQ(ulpo_nvmet_start(&o, &t), -EINVAL);
	o.listen = "example.com:0";			/* numeric addresses only */
	CHECK_EQ(ulpo_nvmet_start(&o, &t), -EINVAL);
	o.listen = "[::1]:0";
	if (ulpo_nvmet_start(&o, &t) == 0) {		/* a host without IPv6 may refuse */
		CHECK(ulpo_nvmet_port(t) > 0);
		ulpo_nvmet_stop(t);
	}
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "admin: properties, identify, features, shutdown", t_admin },
	{ "admin: async event requests held, limit, cid conflict", t_aer },
	{ "connect: invalid parameters, by R2T, qid in use", t_connect_errors },
	{ "io: statuses (ns, range, length, CC.EN, opcode)", t_io_errors },
	{ "bad PDU type: TermReq 0x01, other connection goes on", t_bad_type },
	{ "PDU sequence and ICReq fields: TermReq", t_sequence },
	{ "header digest error: TermReq 0x03", t_hdgst },
	{ "data digest error: command fails 0x04, queue goes on", t_ddgst },
	{ "H2CData violations: TermReq FES/FEI", t_h2c_errors },
	{ "R2T writes split at MAXH2CDATA, two in flight", t_r2t },
	{ "1 MiB read in several C2HData PDUs", t_read_1mib },
	{ "HPDA alignment of C2HData", t_hpda },
	{ "no SQ flow control: SQHD 0xffff, C2HData SUCCESS", t_no_sq_flow },
	{ "keep alive: kept, then expired", t_kato },
	{ "eight I/O queues at once", t_concurrent },
	{ "100 connections", t_many },
	{ "stop with connections open", t_stop },
	{ "file namespace, 4 KiB blocks", t_file },
	{ "bad options", t_bad_opts },
};

int main(int argc, char **argv)
{
	struct ulpo_nvmet_opts o = { .listen = "127.0.0.1:0", .subnqn = NQN, .ram_bytes = RAM,
				     .maxh2cdata = MAXH2C, .mqes = MQES, .max_io_queues = MAXQ,
				     .c2h_success = true, .verbose = getenv("NVMET_VERBOSE") != NULL };
	int passed = 0, failed = 0, r;

	signal(SIGPIPE, SIG_IGN);
	r = ulpo_nvmet_start(&o, &g_t);
	if (r) {
		fprintf(stderr, "ulpo_nvmet_start: %s\n", strerror(-r));
		return 1;
	}
	g_port = ulpo_nvmet_port(g_t);
	printf("# target on port %d, seed %#llx\n", g_port, (unsigned long long)g_seed);
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int before = t_failed_checks;

		if (argc > 1 && !strstr(tests[i].name, argv[1]))
			continue;
		t_current = tests[i].name;
		tests[i].fn();
		if (t_failed_checks == before) {
			passed++;
			printf("ok     %s\n", tests[i].name);
		} else {
			failed++;
			printf("not ok %s\n", tests[i].name);
		}
		fflush(stdout);
	}
	ulpo_nvmet_stop(g_t);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
