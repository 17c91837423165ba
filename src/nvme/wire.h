/* wire.h - NVMe/TCP on the wire (NVMe over TCP Transport 1.0, NVMe base and fabrics
 * specifications): PDU headers, the 64-byte command and 16-byte completion, the Fabrics
 * commands, and the fields of Identify that host and target use. Little endian on the
 * wire; these structs are exact images (checked below), so a header is read or written
 * with one copy. Shared by the host (host*.c), the target (target*.c) and the DDP device. */
#ifndef ULPO_NVME_WIRE_H
#define ULPO_NVME_WIRE_H

#include <stdint.h>

/* ---- PDU common header ---- */

enum nvme_tcp_pdu_type {
	NVME_TCP_ICREQ = 0x00,
	NVME_TCP_ICRESP = 0x01,
	NVME_TCP_H2C_TERM = 0x02,
	NVME_TCP_C2H_TERM = 0x03,
	NVME_TCP_CMD = 0x04,
	NVME_TCP_RSP = 0x05,
	NVME_TCP_H2C_DATA = 0x06,
	NVME_TCP_C2H_DATA = 0x07,
	NVME_TCP_R2T = 0x09,
};

enum {
	NVME_TCP_F_HDGST = 0x01,
	NVME_TCP_F_DDGST = 0x02,
	NVME_TCP_F_DATA_LAST = 0x04,	/* H2CData, C2HData: last PDU of the transfer */
	NVME_TCP_F_DATA_SUCCESS = 0x08,	/* C2HData: the command succeeded, no CapsuleResp */
};

/* ICReq/ICResp dgst field */
enum { NVME_TCP_HDGST_ENABLE = 0x01, NVME_TCP_DDGST_ENABLE = 0x02 };

#define NVME_TCP_DIGEST_LEN 4
#define NVME_TCP_PFV_1_0 0
#define NVME_TCP_IC_HLEN 128
#define NVME_TCP_CMD_HLEN 72
#define NVME_TCP_RSP_HLEN 24
#define NVME_TCP_DATA_HLEN 24		/* H2CData, C2HData, R2T */
#define NVME_TCP_TERM_HLEN 24
#define NVME_TCP_MAX_HLEN 128
/* A TermReq carries the offending PDU header after its own, up to this much. */
#define NVME_TCP_TERM_MAX_DATA 152

struct nvme_tcp_hdr {
	uint8_t type;
	uint8_t flags;
	uint8_t hlen;
	uint8_t pdo;
	uint32_t plen;
} __attribute__((packed));

struct nvme_tcp_icreq {
	struct nvme_tcp_hdr hdr;
	uint16_t pfv;
	uint8_t hpda;			/* host PDU data alignment, dwords, 0's based */
	uint8_t dgst;
	uint32_t maxr2t;		/* 0's based */
	uint8_t rsvd[112];
} __attribute__((packed));

struct nvme_tcp_icresp {
	struct nvme_tcp_hdr hdr;
	uint16_t pfv;
	uint8_t cpda;			/* controller PDU data alignment, dwords, 0's based */
	uint8_t dgst;
	uint32_t maxh2cdata;		/* bytes, at least 4096 */
	uint8_t rsvd[112];
} __attribute__((packed));

enum nvme_tcp_fes {
	NVME_TCP_FES_INVALID_PDU_HDR = 0x01,
	NVME_TCP_FES_PDU_SEQ_ERR = 0x02,
	NVME_TCP_FES_HDR_DIGEST_ERR = 0x03,
	NVME_TCP_FES_DATA_OUT_OF_RANGE = 0x04,
	NVME_TCP_FES_R2T_LIMIT_EXCEEDED = 0x05,	/* C2HTermReq: data transfer limit exceeded */
	NVME_TCP_FES_UNSUPPORTED_PARAM = 0x06,
};

struct nvme_tcp_term {
	struct nvme_tcp_hdr hdr;
	uint16_t fes;
	uint32_t fei;			/* byte offset of the bad field, or the bad value */
	uint8_t rsvd[10];
} __attribute__((packed));

struct nvme_sgl_desc {
	uint64_t addr;
	uint32_t length;
	uint8_t rsvd[3];
	uint8_t type;			/* descriptor type << 4 | subtype */
} __attribute__((packed));

/* Data Block, subtype Offset: data in the capsule, at addr bytes from its start. */
#define NVME_SGL_INCAPSULE 0x01
/* Transport SGL Data Block, transport specific: data moves by R2T/H2CData or C2HData. */
#define NVME_SGL_TRANSPORT 0x5a
#define NVME_CMD_FLAGS_SGL 0x40	/* PSDT 01b: SGLs for data */

struct nvme_sqe {
	uint8_t opcode;
	uint8_t flags;
	uint16_t cid;
	uint32_t nsid;			/* Fabrics commands: byte 4 is fctype */
	uint32_t cdw2, cdw3;
	uint64_t mptr;
	struct nvme_sgl_desc dptr;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
} __attribute__((packed));

struct nvme_cqe {
	uint32_t dw0;
	uint32_t dw1;
	uint16_t sqhd;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status;		/* bit 0 phase; SC bits 8:1, SCT 11:9, DNR bit 15 */
} __attribute__((packed));

struct nvme_tcp_cmd {
	struct nvme_tcp_hdr hdr;
	struct nvme_sqe sqe;
} __attribute__((packed));

struct nvme_tcp_rsp {
	struct nvme_tcp_hdr hdr;
	struct nvme_cqe cqe;
} __attribute__((packed));

/* H2CData and C2HData (ttag reserved in C2HData) */
struct nvme_tcp_data {
	struct nvme_tcp_hdr hdr;
	uint16_t cccid;
	uint16_t ttag;
	uint32_t datao;
	uint32_t datal;
	uint8_t rsvd[4];
} __attribute__((packed));

struct nvme_tcp_r2t {
	struct nvme_tcp_hdr hdr;
	uint16_t cccid;
	uint16_t ttag;
	uint32_t r2to;
	uint32_t r2tl;
	uint8_t rsvd[4];
} __attribute__((packed));

_Static_assert(sizeof(struct nvme_tcp_hdr) == 8, "common header");
_Static_assert(sizeof(struct nvme_tcp_icreq) == NVME_TCP_IC_HLEN, "ICReq");
_Static_assert(sizeof(struct nvme_tcp_icresp) == NVME_TCP_IC_HLEN, "ICResp");
_Static_assert(sizeof(struct nvme_tcp_term) == NVME_TCP_TERM_HLEN, "TermReq");
_Static_assert(sizeof(struct nvme_sqe) == 64, "SQE");
_Static_assert(sizeof(struct nvme_cqe) == 16, "CQE");
_Static_assert(sizeof(struct nvme_tcp_cmd) == NVME_TCP_CMD_HLEN, "CapsuleCmd");
_Static_assert(sizeof(struct nvme_tcp_rsp) == NVME_TCP_RSP_HLEN, "CapsuleResp");
_Static_assert(sizeof(struct nvme_tcp_data) == NVME_TCP_DATA_HLEN, "H2CData/C2HData");
_Static_assert(sizeof(struct nvme_tcp_r2t) == NVME_TCP_DATA_HLEN, "R2T");

/* ---- commands ---- */

enum nvme_admin_opcode {
	NVME_ADMIN_GET_LOG_PAGE = 0x02,
	NVME_ADMIN_IDENTIFY = 0x06,
	NVME_ADMIN_SET_FEATURES = 0x09,
	NVME_ADMIN_GET_FEATURES = 0x0a,
	NVME_ADMIN_ASYNC_EVENT = 0x0c,
	NVME_ADMIN_KEEP_ALIVE = 0x18,
};

enum nvme_io_opcode {
	NVME_CMD_FLUSH = 0x00,
	NVME_CMD_WRITE = 0x01,
	NVME_CMD_READ = 0x02,
};

#define NVME_FABRICS_OPCODE 0x7f
enum nvme_fabrics_type {
	NVME_FCTYPE_PROPERTY_SET = 0x00,
	NVME_FCTYPE_CONNECT = 0x01,
	NVME_FCTYPE_PROPERTY_GET = 0x04,
};

/* Connect: fctype at byte 4; cdw10 = recfmt | qid << 16; cdw11 = sqsize (0's based) |
 * cattr << 16; cdw12 = kato (ms). Its 1024 bytes of data: */
struct nvmf_connect_data {
	uint8_t hostid[16];
	uint16_t cntlid;		/* 0xffff on the admin queue: any controller */
	uint8_t rsvd[238];
	char subnqn[256];
	char hostnqn[256];
	uint8_t rsvd2[256];
} __attribute__((packed));
_Static_assert(sizeof(struct nvmf_connect_data) == 1024, "Connect data");

/* Connect CATTR (cdw11 bits 23:16) */
#define NVMF_CONNECT_DISABLE_SQFLOW 0x4u

/* Property Get/Set: attrib in cdw10 bits 2:0 (0: 4 bytes, 1: 8 bytes), offset in cdw11,
 * value (Set) in cdw12..13; Get returns it in dw0 (and dw1). */
enum nvme_property {
	NVME_REG_CAP = 0x00,
	NVME_REG_VS = 0x08,
	NVME_REG_CC = 0x14,
	NVME_REG_CSTS = 0x1c,
};
#define NVME_CC_EN 0x1u
#define NVME_CC_SHN_MASK (0x3u << 14)
#define NVME_CC_SHN_NORMAL (0x1u << 14)
#define NVME_CC_IOSQES_SHIFT 16
#define NVME_CC_IOCQES_SHIFT 20
#define NVME_CSTS_RDY 0x1u
#define NVME_CSTS_CFS 0x2u
#define NVME_CSTS_SHST_MASK (0x3u << 2)
#define NVME_CSTS_SHST_CMPLT (0x2u << 2)
/* CAP: MQES bits 15:0 (0's based), TO bits 31:24 (500 ms units) */

enum nvme_feature { NVME_FEAT_NUM_QUEUES = 0x07, NVME_FEAT_KATO = 0x0f };

/* Identify CNS values */
enum { NVME_ID_CNS_NS = 0x00, NVME_ID_CNS_CTRL = 0x01, NVME_ID_CNS_NS_ACTIVE_LIST = 0x02 };

/* Offsets in the 4096-byte Identify Controller data. */
enum {
	NVME_IDC_VID = 0, NVME_IDC_SN = 4, NVME_IDC_MN = 24, NVME_IDC_FR = 64,
	NVME_IDC_MDTS = 77, NVME_IDC_CNTLID = 78, NVME_IDC_VER = 80, NVME_IDC_KAS = 320,
	NVME_IDC_SQES = 512, NVME_IDC_CQES = 513, NVME_IDC_MAXCMD = 514, NVME_IDC_NN = 516,
	NVME_IDC_SGLS = 536, NVME_IDC_SUBNQN = 768, NVME_IDC_IOCCSZ = 1792,
	NVME_IDC_IORCSZ = 1796, NVME_IDC_ICDOFF = 1800, NVME_IDC_FCATT = 1802,
	NVME_IDC_MSDBD = 1803,
};
/* Offsets in the 4096-byte Identify Namespace data. */
enum {
	NVME_IDN_NSZE = 0, NVME_IDN_NCAP = 8, NVME_IDN_NUSE = 16, NVME_IDN_NLBAF = 25,
	NVME_IDN_FLBAS = 26, NVME_IDN_LBAF0 = 128,	/* 4 bytes each: MS(2) LBADS(1) RP(1) */
};
#define NVME_IDENTIFY_LEN 4096

/* ---- status (CQE status >> 1) ---- */

#define NVME_SCT_GENERIC 0x0
#define NVME_SCT_CMD_SPECIFIC 0x1
#define NVME_STATUS(sct, sc) ((uint16_t)((sct) << 8 | (sc)))
#define NVME_SC_SUCCESS 0x00
#define NVME_SC_INVALID_OPCODE 0x01
#define NVME_SC_INVALID_FIELD 0x02
#define NVME_SC_CID_CONFLICT 0x03
#define NVME_SC_DATA_XFER_ERROR 0x04
#define NVME_SC_ABORT_REQ 0x07
#define NVME_SC_INTERNAL 0x06
#define NVME_SC_INVALID_NS 0x0b
#define NVME_SC_CMD_SEQ_ERROR 0x0c
#define NVME_SC_SGL_INVALID_DATA 0x0f
#define NVME_SC_TRANSIENT_TR_ERR 0x22
#define NVME_SC_LBA_RANGE 0x80
#define NVME_SC_CAP_EXCEEDED 0x81
#define NVME_SC_NS_NOT_READY 0x82
/* Fabrics Connect, command specific */
#define NVME_SC_CONNECT_FORMAT 0x80
#define NVME_SC_CONNECT_CTRL_BUSY 0x81
#define NVME_SC_CONNECT_INVALID_PARAM 0x82
#define NVME_SC_CONNECT_INVALID_HOST 0x84
#define NVME_SC_DNR 0x4000		/* in status >> 1: do not retry */

#endif
