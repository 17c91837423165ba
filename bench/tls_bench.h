/* tls_bench.h - the TLS benchmark as a function, for bench/tls_bench and `ulpo bench tls`. */
#ifndef ULPO_TLS_BENCH_H
#define ULPO_TLS_BENCH_H

/* Runs the benchmark with command-line options argv[1..argc-1]; `prog` names it in
 * messages and usage, `default_plot` is the PNG written without --plot (NULL: none).
 * Returns the exit status. */
int tls_bench_main(const char *prog, int argc, char **argv, const char *default_plot);

#endif
