/* stats_cmd.c - `ulpo stats`: read the counters that processes using ulpo publish in
 * /dev/shm (see src/core/stats.c), as text or JSON. Files of dead processes are skipped
 * and removed. */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/stats.h"
#include "ulpo.h"

static int show(const char *path, int pid, bool json, bool *first)
{
	struct ulpo_stats_page *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	p = mmap(NULL, sizeof(*p), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	if (p->magic != ULPO_STATS_MAGIC || p->version != ULPO_STATS_VERSION) {
		munmap(p, sizeof(*p));
		return -EPROTO;
	}
	if (json) {
		printf("%s\n  {\"pid\": %d, \"comm\": \"%.*s\", \"counters\": {", *first ? "" : ",",
		       pid, (int)strnlen(p->comm, sizeof(p->comm)), p->comm);
		for (unsigned int i = 0; i < p->nstats && i < ULPO_STAT_MAX; i++)
			printf("%s\"%s\": %llu", i ? ", " : "", ulpo_stat_name(i),
			       (unsigned long long)atomic_load(&p->values[i].v));
		printf("}}");
	} else {
		printf("pid %d (%.*s)\n", pid, (int)strnlen(p->comm, sizeof(p->comm)), p->comm);
		for (unsigned int i = 0; i < p->nstats && i < ULPO_STAT_MAX; i++)
			printf("  %-24s %llu\n", ulpo_stat_name(i),
			       (unsigned long long)atomic_load(&p->values[i].v));
	}
	*first = false;
	munmap(p, sizeof(*p));
	return 0;
}

int ulpo_cmd_stats(int argc, char **argv)
{
	bool json = false, first = true;
	int want = 0, found = 0;
	struct dirent *de;
	DIR *dir;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--pid") && i + 1 < argc)
			want = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: ulpo stats [--pid P] [--json]\n");
			return 2;
		}
	}
	dir = opendir(ULPO_STATS_DIR);
	if (!dir) {
		perror("ulpo stats: " ULPO_STATS_DIR);
		return 1;
	}
	if (json)
		printf("[");
	while ((de = readdir(dir))) {
		char path[512];
		int pid;

		if (strncmp(de->d_name, ULPO_STATS_PREFIX, strlen(ULPO_STATS_PREFIX)))
			continue;
		pid = atoi(de->d_name + strlen(ULPO_STATS_PREFIX));
		snprintf(path, sizeof(path), "%s/%s", ULPO_STATS_DIR, de->d_name);
		if (pid <= 0 || (kill(pid, 0) && errno == ESRCH)) {
			unlink(path);	/* left by a process that died without cleaning up */
			continue;
		}
		if (want && pid != want)
			continue;
		if (show(path, pid, json, &first) == 0)
			found++;
	}
	closedir(dir);
	if (json)
		printf("%s]\n", found ? "\n" : "");
	else if (!found)
		printf(want ? "no ulpo process with pid %d\n" : "no process is using ulpo\n", want);
	return want && !found ? 1 : 0;
}
