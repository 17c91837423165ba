/* progress.h - a progress bar on stderr: redrawn in place on a terminal, an occasional
 * plain line otherwise (logs, CI). */
#ifndef ULPO_BENCH_PROGRESS_H
#define ULPO_BENCH_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct progress {
	bool on, tty;
	size_t total, done;		/* runs */
	double est_run;			/* seconds a run is expected to take; 0: unknown */
	struct timespec t0;
	double last_line;		/* seconds since t0 of the last plain line */
	bool drawn;			/* a bar is on the terminal's last line */
};

void progress_init(struct progress *p, bool on, size_t total, double est_run);
/* Before run number p->done: cell i of n in the round, and what it is. */
void progress_show(struct progress *p, size_t cell, size_t ncells, int round, int rounds,
		   const char *what);
void progress_step(struct progress *p);
/* Wipe the bar before other output reaches the terminal; the next show draws it again. */
void progress_clear(struct progress *p);
/* Done: wipe the bar; a last plain line when not on a terminal. */
void progress_end(struct progress *p);

#endif
