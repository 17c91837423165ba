/* plot.h - grouped bar charts written as PNG files, with no library beyond libc: used by
 * `ulpo bench` to leave a picture of a run next to its table. */
#ifndef ULPO_TOOLS_PLOT_H
#define ULPO_TOOLS_PLOT_H

#include <stddef.h>

/* One series: a colour in the legend and a bar in every group. */
struct plot_series {
	const char *name;
	const double *values;		/* [ngroups]; NAN draws no bar (not measured) */
};

struct plot_bars {
	const char *title;
	const char *ylabel;		/* e.g. "GB/s" */
	const char *const *groups;	/* [ngroups] labels under the axis */
	size_t ngroups;
	const struct plot_series *series;
	size_t nseries;
	unsigned int width, height;	/* pixels; 0 = a default that fits the labels */
};

/* Draw the chart and write it to `path` (replaced atomically). 0 or a negative errno:
 * -EINVAL for no groups or series, a value < 0 or infinite, or more than
 * PLOT_MAX_SERIES series; the errno of a failed write. */
#define PLOT_MAX_SERIES 8
int plot_bars_png(const char *path, const struct plot_bars *p);

#endif
