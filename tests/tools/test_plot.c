/* test_plot.c - tests of the bar-chart PNG writer (tools/plot.c). Charts of several
 * shapes go to a temporary folder, each with a NAME.txt saying what it shows (size, one
 * line of values per series); check_png.py, run here under python3, decodes every PNG
 * with zlib and checks it against that: chunks and CRCs, the image, and one bar of the
 * right height per value in each series' colour. A copy with a flipped byte and a
 * truncated one must make it fail, so a checker that passes everything is caught too.
 * Bad input must give -EINVAL and create no file; a failed write its errno and no .tmp.
 *
 * Usage: test_plot [--keep DIR] CHECK_PNG_PY [PYTHON3]
 *   --keep DIR  write the charts to DIR and leave them there (to look at them)
 *   PYTHON3     without it the decoding checks are skipped (and said so)
 * Exit 0 pass, 1 fail. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"
#include "plot.h"

int t_failed_checks;
const char *t_current;

static char g_dir[256];
static const char *g_script, *g_python;
static char *g_specs[64];		/* .txt files for check_png.py */
static int g_nspecs;

static uint64_t g_seed = 0x5eed7107;

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static const char *path_in(const char *name)
{
	static char buf[8][600];
	static int next;
	char *p = buf[next++ % 8];

	snprintf(p, sizeof(buf[0]), "%s/%s", g_dir, name);
	return p;
}

static bool tmp_exists(const char *path)
{
	char tmp[700];

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	return exists(tmp);
}

/* No file at path and none at path.tmp. */
static bool no_file(const char *path)
{
	return !exists(path) && !tmp_exists(path);
}

static bool is_png(const char *path)
{
	unsigned char sig[8] = { 0 };
	FILE *f = fopen(path, "rb");
	bool ok;

	if (!f)
		return false;
	ok = fread(sig, 1, 8, f) == 8 && memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0;
	fclose(f);
	return ok;
}

/* Draw the chart as NAME.png and leave NAME.txt for check_png.py: "bars" checks every
 * bar, "structure" only the file and that something is drawn (for sizes too small to
 * hold the chart). */
static void chart(const char *name, const struct plot_bars *p, const char *check,
		  unsigned int minw, unsigned int minh)
{
	char png[256], txt[256];
	const char *path;
	FILE *f;

	snprintf(png, sizeof(png), "%s.png", name);
	snprintf(txt, sizeof(txt), "%s.txt", name);
	path = path_in(png);
	CHECK_EQ(plot_bars_png(path, p), 0);
	CHECK(is_png(path));
	CHECK(!tmp_exists(path));
	f = fopen(path_in(txt), "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fprintf(f, "png %s.png\nsize %u %u\nminsize %u %u\ncheck %s\nseries %zu\n", name,
		p->width, p->height, minw, minh, check, p->nseries);
	for (size_t s = 0; s < p->nseries; s++) {
		fprintf(f, "values");
		for (size_t g = 0; g < p->ngroups; g++)
			fprintf(f, " %.17g", p->series[s].values[g]);
		fprintf(f, "\n");
	}
	CHECK_EQ(fclose(f), 0);
	if (g_nspecs < (int)(sizeof(g_specs) / sizeof(g_specs[0])))
		g_specs[g_nspecs++] = strdup(path_in(txt));
}

/* ---- charts ---- */

static const char *const cipher_groups[] = {
	"AES-128-GCM tx 1 stream", "AES-128-GCM rx 1 stream", "AES-256-GCM tx 8 streams",
	"ChaCha20-Poly1305 tx", "NVMe-TCP CRC32C digest",
};

static void t_normal(void)
{
	static const double a[] = { 2.10, 1.95, 7.8, 1.2, 9.6 };
	static const double b[] = { 3.45, 3.02, 12.4, 0.9, 11.1 };
	static const double c[] = { 4.02, 3.9, 14.9, 2.2, 10.5 };
	const struct plot_series s[] = {
		{ "kernel kTLS", a }, { "ulpo inline", b }, { "ulpo async (3 workers)", c },
	};
	const struct plot_bars p = {
		.title = "ulpo bench: throughput by cipher", .ylabel = "GB/s",
		.groups = cipher_groups, .ngroups = 5, .series = s, .nseries = 3,
	};

	chart("normal", &p, "bars", 1000, 600);
}

/* Not measured (NAN): no bar, "n/a"; zero: no bar, "0". */
static void t_nan(void)
{
	static const double a[] = { 1.5, NAN, 3.25, 0 };
	static const double b[] = { NAN, 2.75, 0.5, 4 };
	const char *const groups[] = { "4 KiB", "16 KiB", "64 KiB", "1 MiB" };
	const struct plot_series s[] = { { "tx", a }, { "rx", b } };
	const struct plot_bars p = {
		.title = "record size sweep", .ylabel = "GB/s", .groups = groups, .ngroups = 4,
		.series = s, .nseries = 2,
	};

	chart("nan", &p, "bars", 1000, 600);
}

static void t_all_nan(void)
{
	static const double a[] = { NAN, NAN, NAN };
	const char *const groups[] = { "a", "b", "c" };
	const struct plot_series s[] = { { "nothing", a }, { "still nothing", a } };
	const struct plot_bars p = {
		.title = "nothing measured", .groups = groups, .ngroups = 3, .series = s,
		.nseries = 2,
	};

	chart("all_nan", &p, "bars", 1000, 600);
}

static void t_single(void)
{
	static const double a[] = { 42.5 };
	const char *const groups[] = { "only" };
	const struct plot_series s[] = { { "one", a } };
	const struct plot_bars p = {
		.title = "single", .ylabel = "Gbit/s", .groups = groups, .ngroups = 1,
		.series = s, .nseries = 1, .width = 640, .height = 480,
	};

	chart("single", &p, "bars", 640, 480);
}

static void t_eight(void)
{
	static double v[PLOT_MAX_SERIES][4];
	const char *const groups[] = { "1 stream", "2 streams", "4 streams", "8 streams" };
	static const char *const names[PLOT_MAX_SERIES] = {
		"inline", "async 1", "async 2", "async 3", "async 4", "kTLS", "OpenSSL", "GnuTLS",
	};
	struct plot_series s[PLOT_MAX_SERIES];
	struct plot_bars p = {
		.title = "eight series", .ylabel = "GB/s", .groups = groups, .ngroups = 4,
		.series = s, .nseries = PLOT_MAX_SERIES,
	};

	for (int i = 0; i < PLOT_MAX_SERIES; i++) {
		for (int g = 0; g < 4; g++)
			v[i][g] = 0.8 + 0.35 * i + 1.1 * g + 0.07 * ((i * 7 + g * 3) % 5);
		s[i] = (struct plot_series){ names[i], v[i] };
	}
	chart("eight", &p, "bars", 1000, 600);
}

static void t_long_labels(void)
{
	static const double a[] = { 1, 2, 3, 4, 5, 6, 7 };
	static const double b[] = { 7, 6, 5, 4, 3, 2, 1 };
	const char *const groups[] = {
		"AES-128-GCM tx 1 stream with a much longer description than fits",
		"AES-128-GCM rx 1 stream", "AES-256-GCM tx 8 streams MSG_MORE",
		"ChaCha20-Poly1305/TLS1.3 rx 16 KiB records",
		"averyveryverylongwordwithoutanyspacesatallforty",
		"NVMe-TCP CRC32C data digest, 128 KiB I/O", "x",
	};
	const struct plot_series s[] = { { "before the change", a }, { "after it", b } };
	const struct plot_bars p = {
		.title = "Long group labels wrap under their group and stay readable",
		.ylabel = "records per second (millions)", .groups = groups, .ngroups = 7,
		.series = s, .nseries = 2,
	};

	chart("long_labels", &p, "bars", 1000, 600);
}

/* Large numbers: ticks as 500k, 1M...; and an explicit smaller size. */
static void t_big_values(void)
{
	static const double a[] = { 1.25e6, 2.5e6, 650e3 };
	static const double b[] = { 1.9e6, 3.1e6, 1.1e6 };
	const char *const groups[] = { "1 KiB", "4 KiB", "16 KiB" };
	const struct plot_series s[] = { { "ops/s tx", a }, { "ops/s rx", b } };
	const struct plot_bars p = {
		.title = "operations", .ylabel = "ops/s", .groups = groups, .ngroups = 3,
		.series = s, .nseries = 2, .width = 800, .height = 500,
	};

	chart("big_values", &p, "bars", 800, 500);
}

/* Wider than the default for many groups. */
static void t_many_groups(void)
{
	static double a[30], b[30];
	static char names[30][32];
	const char *groups[30];
	const struct plot_series s[] = { { "tx", a }, { "rx", b } };
	const struct plot_bars p = {
		.title = "thirty groups", .ylabel = "GB/s", .groups = groups, .ngroups = 30,
		.series = s, .nseries = 2,
	};

	for (int g = 0; g < 30; g++) {
		snprintf(names[g], sizeof(names[g]), "%d KiB records", 1 << (g % 12));
		groups[g] = names[g];
		a[g] = 1 + (g % 7) * 0.5;
		b[g] = 0.2 + (g % 5) * 0.9;
	}
	chart("many_groups", &p, "bars", 1200, 600);
}

/* Narrow bars in a fixed width: labels turn upright or are left out. */
static void t_narrow(void)
{
	static double v[PLOT_MAX_SERIES][12];
	static char names[12][24];
	const char *groups[12];
	struct plot_series s[PLOT_MAX_SERIES];
	struct plot_bars p = {
		.title = "eight series in twelve groups at 1000 pixels", .ylabel = "GB/s",
		.groups = groups, .ngroups = 12, .series = s, .nseries = PLOT_MAX_SERIES,
		.width = 1000, .height = 600,
	};

	for (int g = 0; g < 12; g++) {
		snprintf(names[g], sizeof(names[g]), "queue depth %d", 1 << g);
		groups[g] = names[g];
	}
	for (int i = 0; i < PLOT_MAX_SERIES; i++) {
		for (int g = 0; g < 12; g++)
			v[i][g] = (i + g) % 9 == 4 ? NAN : 10 + 9.5 * i + 3.3 * g;
		s[i] = (struct plot_series){ "series", v[i] };
	}
	chart("narrow", &p, "bars", 1000, 600);
}

/* Tiny values, UTF-8 and control characters, no title or ylabel. */
static void t_odd_text(void)
{
	static const double a[] = { 0.00042, 0.0013 };
	static const double b[] = { 0.0009, 0.00001 };
	const char *const groups[] = { "\xc2\xb5s per op\t(median)", "\x01\x7f\xff" };
	const struct plot_series s[] = { { "caf\xc3\xa9", a }, { NULL, b } };
	const struct plot_bars p = {
		.groups = groups, .ngroups = 2, .series = s, .nseries = 2,
	};

	chart("odd_text", &p, "bars", 1000, 600);
}

/* Smaller than the chart needs: drawn clipped, never outside the image. */
static void t_tiny(void)
{
	static const double a[] = { 1, 2, 3 };
	const char *const groups[] = { "a long group label", "b", "c" };
	const struct plot_series s[] = { { "s", a }, { "t", a }, { "u", a } };
	struct plot_bars p = {
		.title = "a title much wider than the image", .ylabel = "GB/s", .groups = groups,
		.ngroups = 3, .series = s, .nseries = 3, .width = 1, .height = 1,
	};
	static const unsigned int sizes[][2] = { { 1, 1 }, { 2, 3 }, { 40, 30 }, { 120, 90 } };
	char name[32];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		p.width = sizes[i][0];
		p.height = sizes[i][1];
		snprintf(name, sizeof(name), "tiny_%ux%u", p.width, p.height);
		chart(name, &p, "structure", p.width, p.height);
	}
}

/* Random shapes, sizes, values and bytes in the strings: every one must come out as a
 * PNG (and, under ASan, without a stray access). A few go to check_png.py. */
static void t_random(void)
{
	static double v[PLOT_MAX_SERIES][40];
	static char text[42][24];
	const char *groups[40];
	struct plot_series s[PLOT_MAX_SERIES];
	struct plot_bars p;
	char name[32];

	printf("seed 0x%llx\n", (unsigned long long)g_seed);
	for (int it = 0; it < 60; it++) {
		uint64_t r = t_rand(&g_seed);

		p = (struct plot_bars){
			.title = text[40], .ylabel = text[41], .groups = groups, .series = s,
			.ngroups = 1 + r % 40, .nseries = 1 + (r >> 8) % PLOT_MAX_SERIES,
			.width = (r >> 16) % 3 ? 0 : 1 + (unsigned int)((r >> 20) % 1400),
			.height = (r >> 32) % 3 ? 0 : 1 + (unsigned int)((r >> 36) % 900),
		};
		for (int i = 0; i < 42; i++) {
			size_t len = t_rand(&g_seed) % sizeof(text[i]);

			t_fill(&g_seed, text[i], len);
			for (size_t k = 0; k < len; k++)	/* mostly printable, some not */
				if (text[i][k] == 0 || (uint8_t)text[i][k] % 4)
					text[i][k] = (char)(' ' + (uint8_t)text[i][k] % 95);
			text[i][len] = '\0';
		}
		for (int g = 0; g < 40; g++)
			groups[g] = text[g];
		for (int i = 0; i < PLOT_MAX_SERIES; i++) {
			double scale = 1e-3 * (double)(1 + t_rand(&g_seed) % 1000000);

			for (int g = 0; g < 40; g++) {
				uint64_t k = t_rand(&g_seed);

				v[i][g] = k % 10 == 0 ? NAN : k % 10 == 1 ? 0 :
					  scale * (double)(k >> 40) / (double)(1 << 24);
			}
			s[i] = (struct plot_series){ text[i], v[i] };
		}
		snprintf(name, sizeof(name), "random_%02d", it);
		if (it < 4 && !p.width && !p.height)
			chart(name, &p, "bars", 1000, 600);
		else if (it < 4)
			chart(name, &p, "structure", 1, 1);
		else {
			const char *path = path_in(strcat(name, ".png"));

			CHECK_EQ(plot_bars_png(path, &p), 0);
			CHECK(is_png(path));
			unlink(path);
		}
	}
}

/* ---- errors ---- */

static void t_einval(void)
{
	static const double ok[] = { 1, 2 };
	static const double neg[] = { 1, -0.5 };
	static const double inf[] = { INFINITY, 1 };
	static const double minf[] = { 1, -INFINITY };
	const char *const groups[] = { "a", "b" };
	struct plot_series s[PLOT_MAX_SERIES + 1];
	struct plot_bars good = {
		.title = "t", .groups = groups, .ngroups = 2, .series = s, .nseries = 1,
	}, p;
	const char *path = path_in("bad.png");

	for (int i = 0; i <= PLOT_MAX_SERIES; i++)
		s[i] = (struct plot_series){ "s", ok };

#define BAD(change)                                                                      \
	do {                                                                             \
		p = good;                                                                \
		s[0].values = ok;                                                        \
		change;                                                                  \
		CHECK_EQ(plot_bars_png(path, &p), -EINVAL);                              \
		CHECK(no_file(path));                                                    \
	} while (0)

	CHECK_EQ(plot_bars_png(NULL, &good), -EINVAL);
	CHECK_EQ(plot_bars_png("", &good), -EINVAL);
	CHECK_EQ(plot_bars_png(path, NULL), -EINVAL);
	CHECK(no_file(path));
	BAD(p.ngroups = 0);
	BAD(p.nseries = 0);
	BAD(p.nseries = PLOT_MAX_SERIES + 1);
	BAD(p.groups = NULL);
	BAD(p.series = NULL);
	BAD(s[0].values = NULL);
	BAD(s[0].values = neg);
	BAD(s[0].values = inf);
	BAD(s[0].values = minf);
	BAD(p.width = 1u << 20);
	BAD(p.height = 100000);
#undef BAD
	/* The largest legal count is fine, and -0.0 is not below zero. */
	{
		static const double mz[] = { -0.0, 1 };

		p = good;
		p.nseries = PLOT_MAX_SERIES;
		s[1].values = mz;
		CHECK_EQ(plot_bars_png(path, &p), 0);
		CHECK(is_png(path));
		unlink(path);
		s[1].values = ok;
	}
}

static void t_write_errors(void)
{
	static const double a[] = { 1 };
	const char *const groups[] = { "a" };
	const struct plot_series s[] = { { "s", a } };
	const struct plot_bars p = { .groups = groups, .ngroups = 1, .series = s, .nseries = 1 };
	const char *dir = path_in("a_dir");

	CHECK_EQ(plot_bars_png(path_in("missing/x.png"), &p), -ENOENT);
	CHECK(!exists(path_in("missing")));
	/* rename() over a directory fails after the .tmp is written: it must go. */
	CHECK_EQ(mkdir(dir, 0755), 0);
	CHECK_EQ(plot_bars_png(dir, &p), -EISDIR);
	CHECK(!tmp_exists(dir));
	CHECK_EQ(rmdir(dir), 0);
}

static long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : (long)st.st_size;
}

/* An existing chart (and a stale .tmp) is replaced by a new file, not written into. */
static void t_replace(void)
{
	static const double a[] = { 1, 2 }, b[] = { 5, 0.5 };
	const char *const groups[] = { "a", "b" };
	struct plot_series s[] = { { "s", a } };
	const struct plot_bars p = { .groups = groups, .ngroups = 2, .series = s, .nseries = 1 };
	const char *path = path_in("replace.png"), *tmp = path_in("replace.png.tmp");
	struct stat st1, st2;
	int fd;

	CHECK_EQ(plot_bars_png(path, &p), 0);
	CHECK_EQ(stat(path, &st1), 0);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, "stale and much longer than nothing", 34), 34);
	close(fd);
	s[0].values = b;
	CHECK_EQ(plot_bars_png(path, &p), 0);
	CHECK_EQ(stat(path, &st2), 0);
	CHECK(st1.st_ino != st2.st_ino);
	CHECK(is_png(path));
	CHECK(!exists(tmp));
	unlink(path);
}

/* The demo chart (normal.png) is small: the LZ77 matches do their job. */
static void t_size(void)
{
	long n = file_size(path_in("normal.png"));

	printf("normal.png: %ld bytes\n", n);
	CHECK(n > 0 && n < 60 * 1024);
}

/* ---- check_png.py ---- */

static int run_python(char **extra, int nextra)
{
	char *argv[80];
	int argc = 0, status;
	pid_t pid;

	argv[argc++] = (char *)g_python;
	argv[argc++] = (char *)g_script;
	for (int i = 0; i < nextra && argc < 79; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		execv(g_python, argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool copy_file(const char *from, const char *to, long flip_at, long truncate_to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	long i = 0;
	int c;

	if (!in || !out) {
		if (in)
			fclose(in);
		if (out)
			fclose(out);
		return false;
	}
	while ((c = getc(in)) != EOF && (truncate_to < 0 || i < truncate_to)) {
		putc(i == flip_at ? c ^ 0x10 : c, out);
		i++;
	}
	fclose(in);
	return fclose(out) == 0;
}

/* A copy of normal.png, corrupt or (values0) said to show other values for the first
 * series, with normal.txt's other expectations: the checker must say no. */
static void expect_reject(const char *name, long flip_at, long truncate_to, const char *values0)
{
	bool first = true;
	char png[64], txt[64], line[256], *argv[1];
	FILE *in, *out;

	snprintf(png, sizeof(png), "%s.png", name);
	snprintf(txt, sizeof(txt), "%s.txt", name);
	CHECK(copy_file(path_in("normal.png"), path_in(png), flip_at, truncate_to));
	in = fopen(path_in("normal.txt"), "r");
	out = fopen(path_in(txt), "w");
	CHECK(in && out);
	if (!in || !out)
		return;
	while (fgets(line, sizeof(line), in)) {
		if (!strncmp(line, "png ", 4)) {
			fprintf(out, "png %s\n", png);
		} else if (values0 && first && !strncmp(line, "values ", 7)) {
			fprintf(out, "values %s\n", values0);
			first = false;
		} else {
			fputs(line, out);
		}
	}
	fclose(in);
	CHECK_EQ(fclose(out), 0);
	argv[0] = (char *)path_in(txt);
	printf("  (check_png.py must reject %s:)\n", png);
	CHECK_EQ(run_python(argv, 1), 1);
}

static void t_check_png(void)
{
	long n = file_size(path_in("normal.png"));

	if (!g_python) {
		printf("  no python3: PNG decoding not checked\n");
		return;
	}
	CHECK_EQ(run_python(g_specs, g_nspecs), 0);
	expect_reject("corrupt_crc", 40, -1, NULL);		/* a byte of PLTE */
	expect_reject("corrupt_idat", n / 2, -1, NULL);	/* inside the zlib stream */
	expect_reject("truncated", -1, n - 20, NULL);
	/* Bars as drawn, values not: two swapped, then one bar too many. */
	expect_reject("wrong_heights", -1, -1, "7.8 1.95 2.10 1.2 9.6");
	expect_reject("wrong_count", -1, -1, "2.10 1.95 7.8 nan 9.6");
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "normal", t_normal },
	{ "nan", t_nan },
	{ "all-nan", t_all_nan },
	{ "single", t_single },
	{ "eight", t_eight },
	{ "long-labels", t_long_labels },
	{ "big-values", t_big_values },
	{ "many-groups", t_many_groups },
	{ "narrow", t_narrow },
	{ "odd-text", t_odd_text },
	{ "tiny", t_tiny },
	{ "random", t_random },
	{ "einval", t_einval },
	{ "write-errors", t_write_errors },
	{ "replace", t_replace },
	{ "size", t_size },
	{ "check_png", t_check_png },
};

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			unlink(path_in(e->d_name));
	if (d)
		closedir(d);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	bool keep = false;
	int passed = 0, failed = 0;

	if (argc > 2 && !strcmp(argv[1], "--keep")) {
		keep = true;
		snprintf(g_dir, sizeof(g_dir), "%s", argv[2]);
		mkdir(g_dir, 0755);
		argv += 2;
		argc -= 2;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: test_plot [--keep DIR] CHECK_PNG_PY [PYTHON3]\n");
		return 1;
	}
	g_script = argv[1];
	g_python = argc > 2 ? argv[2] : NULL;
	if (!keep) {
		const char *t = getenv("TMPDIR");

		snprintf(g_dir, sizeof(g_dir), "%s/test_plot.XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(g_dir)) {
			perror("mkdtemp");
			return 1;
		}
	}
	printf("charts in %s\n", g_dir);
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int before = t_failed_checks;

		t_current = tests[i].name;
		tests[i].fn();
		if (t_failed_checks == before) {
			passed++;
			printf("ok   %s\n", tests[i].name);
		} else {
			failed++;
			printf("FAIL %s\n", tests[i].name);
		}
		fflush(stdout);
	}
	for (int i = 0; i < g_nspecs; i++)
		free(g_specs[i]);
	if (!keep && !failed)
		remove_dir(g_dir);
	else if (failed)
		printf("charts kept in %s\n", g_dir);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
