/* test_rfc8448.c - known-answer test of the TLS 1.3 record layer against the protected
 * records of RFC 8448 section 3 (TLS_AES_128_GCM_SHA256): ulpo's TX must put exactly
 * the RFC's bytes on the wire, and its RX must recover the RFC's plaintexts. */
#include "tls_helpers.h"

int t_failed_checks;
const char *t_current;

static size_t unhex(const char *h, uint8_t *out)
{
	size_t n = 0;

	for (; h[0] && h[1]; h += 2)
		sscanf(h, "%2hhx", &out[n++]);
	return n;
}

/* Application traffic keys, RFC 8448 "derive write traffic keys for application data". */
#define CLIENT_KEY "17422dda596ed5d9acd890e3c63f5051"
#define CLIENT_IV "5b78923dee08579033e523d9"
#define SERVER_KEY "9f02283b6c9c07efc26bb9f2ac92e356"
#define SERVER_IV "cf782b88dd83549aadf1e984"

#define APP_DATA "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" \
		 "202122232425262728292a2b2c2d2e2f3031"
#define ALERT "0100"
#define TICKET "040000c90000001efad6aac502000000b22c035d829359ee5ff7af4ec9000000" \
	       "00262a6494dc486d2c8a34cb33fa90bf1b0070ad3c498883c9367c09a2be785a" \
	       "bc55cd226097a3a982117283f82a03a143efd3ff5dd36d64e861be7fd61d2827" \
	       "db279cce145077d454a3664d4e6da4d29ee03725a6a4dafcd0fc67d2aea70529" \
	       "513e3da2677fa5906c5b3f7d8f92f228bda40dda721470f9fbf297b5aea61764" \
	       "6fac5c03272e970727c621a79141ef5f7de6505e5bfbc388e93343694093934a" \
	       "e4d3570008002a000400000400"

/* Protected records, in order, per direction. */
#define C_APP_REC "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f" \
		  "2b9819a8a5b46b395bd54a9a20441e2b62974e1f5a6292a2977014bd1e3deae6" \
		  "3aeebb21694915e4"
#define C_ALERT_REC "1703030013c9872760655666b74d7ff1153efd6db6d0b0e3"
#define S_TICKET_REC "17030300de3a6b8f90414a97d6959c3487680de5134a2b240e6cffac116e95d4" \
		     "1d6af8f6b580dcf3d11d63c758db289a015940252f55713e061dc13e078891a3" \
		     "8efbcf5753ad8ef170ad3c7353d16d9da773b9ca7f2b9fa1b6c0d4a3d03f75e0" \
		     "9c30ba1e62972ac46f75f7b981be63439b2999ce13064615139891d5e4c5b406" \
		     "f16e3fc181a77ca475840025db2f0a77f81b5ab05b94c01346755f69232c8651" \
		     "9d86cbeeac87aac347d143f9605d64f650db4d023e70e952ca49fe5137121c74" \
		     "bc2697687e248746d6df353005f3bce18696129c8153556b3b6c6779b37bf159" \
		     "85684f"
#define S_APP_REC "17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36" \
		  "e30efaf97d90e6dffc602dcb501a59a8fcc49c4bf2e5f0a21c0047c2abf33254" \
		  "0dd032e167c2955d"
#define S_ALERT_REC "1703030013b58fd67166ebf599d24720cfbe7efa7a8864a9"

static void info_from(const char *key, const char *iv, struct tls12_crypto_info_aes_gcm_128 *ci)
{
	uint8_t ivb[12];

	memset(ci, 0, sizeof(*ci));
	ci->info.version = TLS_1_3_VERSION;
	ci->info.cipher_type = TLS_CIPHER_AES_GCM_128;
	unhex(key, ci->key);
	unhex(iv, ivb);
	memcpy(ci->salt, ivb, 4);	/* kTLS splits the 12-byte IV as salt || iv */
	memcpy(ci->iv, ivb + 4, 8);
}

/* TX: each send must produce exactly the RFC's record. */
static void tx_case(const char *key, const char *iv, const char *const *pts,
		    const uint8_t *types, const char *const *recs, int n)
{
	struct tls12_crypto_info_aes_gcm_128 ci;
	int c, s;

	info_from(key, iv, &ci);
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK(ulp(c) == 0);
	CHECK(U(setsockopt)(c, SOL_TLS, TLS_TX, &ci, sizeof(ci)) == 0);
	for (int i = 0; i < n; i++) {
		uint8_t pt[300], want[300], got[300];
		size_t pl = unhex(pts[i], pt), wl = unhex(recs[i], want);
		ssize_t r = types[i] == 23 ? U(send)(c, pt, pl, 0) : send_typed(c, pt, pl, 0, types[i]);

		CHECK_EQ(r, (ssize_t)pl);
		CHECK_EQ(read_full(s, got, wl), (ssize_t)wl);
		CHECK(memcmp(got, want, wl) == 0);
	}
	close_pair(c, s);
}

/* RX: the RFC's records in one burst decode to its plaintexts, one type per call. */
static void rx_case(const char *key, const char *iv, const char *const *pts,
		    const uint8_t *types, const char *const *recs, int n)
{
	struct tls12_crypto_info_aes_gcm_128 ci;
	uint8_t wire[1024], pt[300], got[300], type;
	size_t wl = 0;
	int c, s;

	for (int i = 0; i < n; i++)
		wl += unhex(recs[i], wire + wl);
	info_from(key, iv, &ci);
	CHECK(tcp_pair(&c, &s) == 0);
	CHECK_EQ(send(c, wire, wl, 0), (ssize_t)wl);	/* queued before TLS_RX, too */
	CHECK(ulp(s) == 0);
	CHECK(U(setsockopt)(s, SOL_TLS, TLS_RX, &ci, sizeof(ci)) == 0);
	for (int i = 0; i < n; i++) {
		size_t pl = unhex(pts[i], pt);

		CHECK_EQ(recv_typed(s, got, sizeof(got), 0, &type, NULL), (ssize_t)pl);
		CHECK_EQ(type, types[i]);
		CHECK(memcmp(got, pt, pl) == 0);
	}
	close_pair(c, s);
}

int main(void)
{
	static const char *const c_pts[] = { APP_DATA, ALERT };
	static const uint8_t c_types[] = { 23, 21 };
	static const char *const c_recs[] = { C_APP_REC, C_ALERT_REC };
	static const char *const s_pts[] = { TICKET, APP_DATA, ALERT };
	static const uint8_t s_types[] = { 22, 23, 21 };
	static const char *const s_recs[] = { S_TICKET_REC, S_APP_REC, S_ALERT_REC };
	int failed = 0, passed = 0, before;

	struct {
		const char *name;
		int is_tx, client;
	} cases[] = {
		{ "rfc8448/client_tx", 1, 1 }, { "rfc8448/client_rx", 0, 1 },
		{ "rfc8448/server_tx", 1, 0 }, { "rfc8448/server_rx", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		before = t_failed_checks;
		t_current = cases[i].name;
		if (cases[i].client)
			(cases[i].is_tx ? tx_case : rx_case)(CLIENT_KEY, CLIENT_IV, c_pts, c_types, c_recs, 2);
		else
			(cases[i].is_tx ? tx_case : rx_case)(SERVER_KEY, SERVER_IV, s_pts, s_types, s_recs, 3);
		t_tally(before, cases[i].name, &passed, &failed);
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
