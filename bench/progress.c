/* progress.c - the benchmark's progress bar: cell i/N of the round, round, percent of all
 * runs, the cell's name and an ETA from the runs done so far. On a terminal it is one
 * line redrawn with \r; into a file or pipe it is a plain line now and then. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "progress.h"

#define BAR_MIN 10			/* characters of the bar: narrow terminal */
#define BAR_MAX 20			/* wide terminal, or not a terminal */
#define PLAIN_EVERY 15.0		/* seconds between plain lines */

static double since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) * 1e-9;
}

static void fmt_time(char *b, size_t n, double s)
{
	unsigned long t = (unsigned long)(s + 0.5);

	if (s < 0)
		snprintf(b, n, "--:--");
	else if (t >= 3600)
		snprintf(b, n, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(b, n, "%lu:%02lu", t / 60, t % 60);
}

static size_t term_cols(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) || ws.ws_col < 20)
		return 80;
	return ws.ws_col;
}

void progress_init(struct progress *p, bool on, size_t total, double est_run)
{
	memset(p, 0, sizeof(*p));
	p->on = on && total;
	p->tty = isatty(STDERR_FILENO);
	p->total = total;
	p->est_run = est_run;
	clock_gettime(CLOCK_MONOTONIC, &p->t0);
	p->last_line = -PLAIN_EVERY;
}

void progress_show(struct progress *p, size_t cell, size_t ncells, int round, int rounds,
		   const char *what)
{
	char bar[BAR_MAX + 1], t_eta[32], rest[224];
	size_t cols = p->tty ? term_cols() - 1 : 200;	/* never wrap: \r goes back one line */
	size_t fill, bw;
	double el, eta = -1;
	int len;

	if (!p->on)
		return;
	el = since(&p->t0);
	/* From the pace so far; before the first run ends, from the expected run time. */
	if (p->done)
		eta = el / (double)p->done * (double)(p->total - p->done);
	else if (p->est_run > 0)
		eta = p->est_run * (double)p->total;
	fmt_time(t_eta, sizeof(t_eta), eta);
	len = snprintf(rest, sizeof(rest), " %3.0f%% ETA %s  round %d/%d cell %zu/%zu  %s",
		       100.0 * (double)p->done / (double)p->total, t_eta, round, rounds, cell,
		       ncells, what);
	if (len < 0)
		return;
	/* A short bar on a narrow terminal; what does not fit is cut from the name's end. */
	bw = cols < 120 ? BAR_MIN : BAR_MAX;
	fill = p->done * bw / p->total;
	memset(bar, '#', fill);
	memset(bar + fill, '.', bw - fill);
	bar[bw] = 0;
	if (p->tty) {
		fprintf(stderr, "\r[%s]%.*s\033[K", bar, (int)(cols - bw - 2), rest);
		p->drawn = true;
	} else if (el - p->last_line >= PLAIN_EVERY) {
		fprintf(stderr, "[%s]%s\n", bar, rest);
		p->last_line = el;
	}
	fflush(stderr);
}

void progress_step(struct progress *p)
{
	if (p->done < p->total)
		p->done++;
}

void progress_clear(struct progress *p)
{
	if (p->on && p->tty && p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->drawn = false;
	}
}

void progress_end(struct progress *p)
{
	char t[32];

	if (!p->on)
		return;
	progress_clear(p);
	if (!p->tty) {
		fmt_time(t, sizeof(t), since(&p->t0));
		fprintf(stderr, "[%.*s] 100%%  %zu runs in %s\n", BAR_MAX,
			"########################################", p->done, t);
	}
	p->on = false;
}
