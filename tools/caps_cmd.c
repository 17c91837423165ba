/* caps_cmd.c - `ulpo caps`: show and change a process's run-time device table (the `ctl`
 * part of its counters' page, src/core/ctl.c): which capabilities each device gives new
 * connections and the process-wide offload policy, as `ethtool -k/-K` does for a NIC. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ulpo/device.h>
#include <ulpo/ulpo.h>

#include "core/stats.h"
#include "ulpo.h"

/* In the order the table shows them. */
static const struct {
	uint32_t bit;
	const char *name;
} cap_names[] = {
	{ ULPO_DEV_CAP_TOE, "toe" },
	{ ULPO_DEV_CAP_TLS_TX, "tls-tx" },
	{ ULPO_DEV_CAP_TLS_RX, "tls-rx" },
	{ ULPO_DEV_CAP_DDP_NVME, "ddp-nvme" },
	{ ULPO_DEV_CAP_DDP_DDGST, "ddp-ddgst" },
};
#define NCAPS (sizeof(cap_names) / sizeof(cap_names[0]))

struct caps_args {
	int pid;			/* 0: this process */
	bool json;
	const char *device;		/* NULL: every device */
	uint32_t on, off;		/* --set */
	int offload;			/* --offload: 1, 0, or -1 unchanged */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ulpo caps [--pid P] [--json] [--device NAME]\n"
		"                 [--set CAP=on|off[,CAP=on|off...]]... [--offload on|off]\n"
		"  --pid      the process to show or change (default: this one, for testing)\n"
		"  --device   only this device (--set applies to it alone)\n"
		"  --set      enable or disable capabilities for new connections: toe, tls-tx,\n"
		"             tls-rx, ddp-nvme, ddp-ddgst (without --device: every device, each\n"
		"             enabling what it supports)\n"
		"  --offload  the process-wide policy: whole connections to a device, or not\n");
}

static void valid_caps(FILE *f)
{
	for (size_t i = 0; i < NCAPS; i++)
		fprintf(f, "%s%s", i ? ", " : "", cap_names[i].name);
}

/* "toe=on,tls-rx=off" into on/off; a later item wins over an earlier one. 0, or -1
 * after a message. */
static int parse_set(const char *arg, uint32_t *on, uint32_t *off)
{
	char buf[256], *save = NULL, *tok;

	if (strlen(arg) >= sizeof(buf) || !*arg) {
		fprintf(stderr, "ulpo caps: --set '%s': expected CAP=on|off[,CAP=on|off...]\n", arg);
		return -1;
	}
	strcpy(buf, arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		uint32_t bit = 0;

		if (eq)
			*eq = 0;
		for (size_t i = 0; i < NCAPS; i++)
			if (!strcmp(tok, cap_names[i].name))
				bit = cap_names[i].bit;
		if (!bit) {
			fprintf(stderr, "ulpo caps: unknown capability '%s' (valid: ", tok);
			valid_caps(stderr);
			fprintf(stderr, ")\n");
			return -1;
		}
		if (eq && !strcmp(eq + 1, "on")) {
			*on |= bit;
			*off &= ~bit;
		} else if (eq && !strcmp(eq + 1, "off")) {
			*off |= bit;
			*on &= ~bit;
		} else {
			fprintf(stderr, "ulpo caps: --set %s%s%s: expected %s=on or %s=off\n",
				tok, eq ? "=" : "", eq ? eq + 1 : "", tok, tok);
			return -1;
		}
	}
	return 0;
}

/* "toe,tls-tx" or "-" for none. */
static void caps_str(uint32_t caps, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = 0;
	for (size_t i = 0; i < NCAPS; i++)
		if (caps & cap_names[i].bit)
			n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? "," : "",
					      cap_names[i].name);
	if (!n)
		snprintf(buf, len, "-");
}

static void size_str(uint32_t bytes, char *buf, size_t len)
{
	if (!bytes)
		snprintf(buf, len, "-");
	else if (!(bytes % (1u << 20)))
		snprintf(buf, len, "%u MiB", bytes >> 20);
	else if (!(bytes % 1024))
		snprintf(buf, len, "%u KiB", bytes >> 10);
	else
		snprintf(buf, len, "%u B", bytes);
}

static void json_str(const char *s, size_t max)
{
	putchar('"');
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_caps(uint32_t caps)
{
	bool first = true;

	putchar('[');
	for (size_t i = 0; i < NCAPS; i++) {
		if (caps & cap_names[i].bit) {
			printf("%s\"%s\"", first ? "" : ", ", cap_names[i].name);
			first = false;
		}
	}
	putchar(']');
}

static uint32_t ctl_ndev(const struct ulpo_ctl *c)
{
	uint32_t n = atomic_load(&c->ndev);	/* entries below ndev are whole (ctl.c) */

	return n < ULPO_CTL_MAX_DEV ? n : ULPO_CTL_MAX_DEV;
}

static bool dev_is(const struct ulpo_ctl_dev *d, const char *name)
{
	return name && !strncmp(d->name, name, ULPO_CTL_NAME_MAX - 1) &&
	       strlen(name) < ULPO_CTL_NAME_MAX;
}

/* The request against the table: the device exists and supports what it is asked to
 * enable (as ulpo_caps_set decides). 0, or the exit code after a message. */
static int check_request(const struct ulpo_ctl *c, const struct caps_args *a)
{
	uint32_t n = ctl_ndev(c);
	char buf[128];

	if (!a->device)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct ulpo_ctl_dev *d = &c->dev[i];

		if (!dev_is(d, a->device))
			continue;
		if (a->on & ~d->caps) {
			caps_str(a->on & ~d->caps, buf, sizeof(buf));
			fprintf(stderr, "ulpo caps: device %s does not support %s", a->device, buf);
			caps_str(d->caps, buf, sizeof(buf));
			fprintf(stderr, " (it supports: %s)\n", buf);
			return 1;
		}
		return 0;
	}
	fprintf(stderr, "ulpo caps: no device %s (devices: ", a->device);
	for (uint32_t i = 0; i < n; i++)
		fprintf(stderr, "%s%.*s", i ? ", " : "", ULPO_CTL_NAME_MAX, c->dev[i].name);
	fprintf(stderr, "%s)\n", n ? "" : "none");
	return 1;
}

/* Another process's table: the same stores ulpo_caps_set makes in its own (the request
 * was checked against it already). Its next connections read them; connections it has
 * are not changed. */
static void apply_remote(struct ulpo_ctl *c, const struct caps_args *a)
{
	if (a->on | a->off)
		ulpo_ctl_caps_set(c, a->device, a->on, a->off);
	if (a->offload >= 0)
		atomic_store(&c->offload, (uint32_t)a->offload);
}

static int apply_local(const struct caps_args *a)
{
	if ((a->on | a->off) && ulpo_caps_set(a->device, a->on, a->off)) {
		fprintf(stderr, "ulpo caps: %s\n", strerror(errno));
		return 1;
	}
	if (a->offload >= 0)
		ulpo_offload_set(a->offload);
	return 0;
}

static void print_table(const struct ulpo_ctl *c, const struct caps_args *a, int pid,
			const char *comm, size_t comm_len)
{
	char sup[ULPO_CTL_MAX_DEV][64], en[ULPO_CTL_MAX_DEV][64];
	int wname = 6, wsup = 9, wen = 7;
	uint32_t n = ctl_ndev(c);

	for (uint32_t i = 0; i < n; i++) {
		const struct ulpo_ctl_dev *d = &c->dev[i];
		int l = (int)strnlen(d->name, ULPO_CTL_NAME_MAX);

		caps_str(d->caps, sup[i], sizeof(sup[i]));
		caps_str(atomic_load(&d->enabled) & d->caps, en[i], sizeof(en[i]));
		if (a->device && !dev_is(d, a->device))
			continue;
		wname = l > wname ? l : wname;
		wsup = (int)strlen(sup[i]) > wsup ? (int)strlen(sup[i]) : wsup;
		wen = (int)strlen(en[i]) > wen ? (int)strlen(en[i]) : wen;
	}
	printf("pid %d (%.*s)\n", pid, (int)strnlen(comm, comm_len), comm);
	printf("%-*s  %-*s  %-*s  %-9s  %-7s  %-7s  %-7s  %s\n", wname, "device", wsup,
	       "supported", wen, "enabled", "max_conns", "sndbuf", "rcvbuf", "mem", "conns");
	for (uint32_t i = 0; i < n; i++) {
		const struct ulpo_ctl_dev *d = &c->dev[i];
		char mc[16], sb[16], rb[16], mb[16];

		if (a->device && !dev_is(d, a->device))
			continue;
		if (d->limits.max_conns)
			snprintf(mc, sizeof(mc), "%u", d->limits.max_conns);
		else
			snprintf(mc, sizeof(mc), "none");
		size_str(d->limits.sndbuf, sb, sizeof(sb));
		size_str(d->limits.rcvbuf, rb, sizeof(rb));
		if (d->limits.mem)
			size_str(d->limits.mem, mb, sizeof(mb));
		else
			snprintf(mb, sizeof(mb), "none");
		printf("%-*.*s  %-*s  %-*s  %-9s  %-7s  %-7s  %-7s  %u\n", wname,
		       ULPO_CTL_NAME_MAX, d->name, wsup, sup[i], wen, en[i], mc, sb, rb, mb,
		       atomic_load(&d->conns));
	}
	printf("offload: %s (process-wide policy)\n", atomic_load(&c->offload) ? "on" : "off");
}

static void print_json(const struct ulpo_ctl *c, const struct caps_args *a, int pid,
		       const char *comm, size_t comm_len)
{
	uint32_t n = ctl_ndev(c);
	bool first = true;

	printf("{\"pid\": %d, \"comm\": ", pid);
	json_str(comm, comm_len);
	printf(", \"offload\": %s, \"devices\": [", atomic_load(&c->offload) ? "true" : "false");
	for (uint32_t i = 0; i < n; i++) {
		const struct ulpo_ctl_dev *d = &c->dev[i];

		if (a->device && !dev_is(d, a->device))
			continue;
		printf("%s\n  {\"name\": ", first ? "" : ",");
		json_str(d->name, ULPO_CTL_NAME_MAX);
		printf(", \"supported\": ");
		json_caps(d->caps);
		printf(", \"enabled\": ");
		json_caps(atomic_load(&d->enabled) & d->caps);
		printf(", \"limits\": {\"max_conns\": %u, \"sndbuf\": %u, \"rcvbuf\": %u, "
		       "\"mem\": %u}, \"conns\": %u}", d->limits.max_conns, d->limits.sndbuf,
		       d->limits.rcvbuf, d->limits.mem, atomic_load(&d->conns));
		first = false;
	}
	printf("%s]}\n", first ? "" : "\n");
}

/* Map /dev/shm/ulpo-stats.<pid>, writable when rw. 0, or the exit code after a
 * message. */
static int page_map(int pid, bool rw, struct ulpo_stats_page **ret)
{
	struct ulpo_stats_page *p;
	char path[64];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/%s%d", ULPO_STATS_DIR, ULPO_STATS_PREFIX, pid);
	fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		if (e == ENOENT && kill(pid, 0) && errno == ESRCH)
			fprintf(stderr, "ulpo caps: no process with pid %d\n", pid);
		else if (e == ENOENT)
			fprintf(stderr, "ulpo caps: pid %d has no ulpo page (%s): it has not used "
				"ulpo TLS yet, or runs another ulpo version, or has "
				"ULPO_NO_STATS_SHM set\n", pid, path);
		else
			fprintf(stderr, "ulpo caps: %s: %s\n", path, strerror(e));
		return 1;
	}
	/* A shorter file is another version's; mapping past its end would fault. */
	if (fstat(fd, &st) || (size_t)st.st_size < sizeof(*p)) {
		fprintf(stderr, "ulpo caps: %s: not a version %d ulpo page (another ulpo version)\n",
			path, ULPO_STATS_VERSION);
		close(fd);
		return 1;
	}
	p = mmap(NULL, sizeof(*p), rw ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		fprintf(stderr, "ulpo caps: %s: mmap: %s\n", path, strerror(errno));
		return 1;
	}
	if (p->magic != ULPO_STATS_MAGIC || p->version != ULPO_STATS_VERSION) {
		fprintf(stderr, "ulpo caps: %s: not a version %d ulpo page (another ulpo version)\n",
			path, ULPO_STATS_VERSION);
		munmap(p, sizeof(*p));
		return 1;
	}
	if (kill(pid, 0) && errno == ESRCH) {
		fprintf(stderr, "ulpo caps: pid %d is not running (%s is left from it)\n", pid, path);
		munmap(p, sizeof(*p));
		return 1;
	}
	*ret = p;
	return 0;
}

int ulpo_cmd_caps(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "device", required_argument, NULL, 'd' },
		{ "set", required_argument, NULL, 's' },
		{ "offload", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct caps_args a = { .offload = -1 };
	struct ulpo_stats_page *page = NULL;
	struct ulpo_ctl *ctl;
	bool change;
	int c, r;

	while ((c = getopt_long(argc, argv, "+p:jd:s:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v <= 0 || v > INT_MAX) {
				fprintf(stderr, "ulpo caps: --pid '%s': not a process id\n", optarg);
				return 1;
			}
			a.pid = (int)v;
			break;
		}
		case 'j':
			a.json = true;
			break;
		case 'd':
			a.device = optarg;
			break;
		case 's':
			if (parse_set(optarg, &a.on, &a.off))
				return 2;
			break;
		case 'o':
			if (!strcmp(optarg, "on")) {
				a.offload = 1;
			} else if (!strcmp(optarg, "off")) {
				a.offload = 0;
			} else {
				fprintf(stderr, "ulpo caps: --offload must be on or off\n");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	change = (a.on | a.off) || a.offload >= 0;

	if (a.pid) {
		r = page_map(a.pid, change, &page);
		if (r)
			return r;
		ctl = &page->ctl;
	} else {
		ulpo_offload_get();	/* the built-in devices have their entries */
		ctl = &ulpo_stats->ctl;
	}
	r = check_request(ctl, &a);
	if (!r && change && a.pid)
		apply_remote(ctl, &a);
	else if (!r && change)
		r = apply_local(&a);
	if (!r) {
		int pid = a.pid ? a.pid : (int)getpid();
		const char *comm = page ? page->comm : "this process";
		size_t comm_len = page ? sizeof(page->comm) : strlen(comm);

		if (a.json)
			print_json(ctl, &a, pid, comm, comm_len);
		else
			print_table(ctl, &a, pid, comm, comm_len);
	}
	if (page)
		munmap(page, sizeof(*page));
	return r;
}
