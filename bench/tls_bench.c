/* tls_bench.c - the TLS benchmark: plaintext TCP vs OpenSSL SSL_write/SSL_read vs ulpo
 * (engine inline, async with 1 and 2 workers) over loopback, in one run. The same code is
 * `ulpo bench tls` (tools/bench_cmd.c); this binary is a thin wrapper that draws no chart
 * unless asked (--plot).
 *
 * What runs: every cell of
 *   cipher   aes-128-gcm, sm4-gcm (OpenSSL has no TLS SM4 suite: its cells are "n/a")
 *   rx       discard: the receiver reads the raw TCP bytes and drops them
 *                     (recv MSG_TRUNC), the same for every mode, so only the sender's
 *                     side is measured (openssl and ulpo still handshake / install keys);
 *            tls:     full TLS both ends, every block's stamp checked
 *   streams  1 and 4 concurrent connections, each with a sender and a receiver thread
 *   mode     tcp, openssl, ulpo, ulpo-async1, ulpo-async2 (and, by name, ulpo-nopad,
 *            ulpo-nopad-async2)
 * with 16 KiB writes (one TLS 1.3 record each), one run per cell per round, rounds
 * interleaved, medians. Per run: aggregate GB/s, the slowest stream's rate over the mean
 * (fairness), CPU seconds per GB from RUSAGE_THREAD (sender side including the engine's
 * workers; receiver side), and how busy the rest of the machine was (a run where other
 * processes took more than 10% of the CPUs is run again, up to --retries, and flagged).
 *
 * Output: a progress bar on stderr; on stdout a table with a row per (cipher, rx,
 * streams), a GB/s column per mode and the ratios of the goals (async2/inline,
 * ulpo/openssl, ulpo/tcp), then CPU per GB, fairness and whether the goals are met;
 * --csv/--json FILE for machines, --plot FILE.png for a grouped bar chart.
 *
 * Running it:
 *   build/bench/tls_bench                 the whole matrix, about 3-5 minutes on 2 cores
 *   build/tools/ulpo bench tls            the same, plus ulpo-bench-tls.png
 *   ulpo bench tls -c aes-128-gcm -x tls -n 1 -m tcp,ulpo,openssl -b 2G   one row
 *   ulpo bench tls --quick                a smoke test (1 round, 32 MiB per run)
 *   meson test -C build --benchmark       this binary with the defaults
 * --help lists every option. Numbers from a machine where other work runs are noise:
 * the "other" load is reported so they can be told apart. */
#include <stddef.h>

#include "tls_bench.h"

int main(int argc, char **argv)
{
	return tls_bench_main("tls_bench", argc, argv, NULL);
}
