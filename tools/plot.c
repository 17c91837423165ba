/* plot.c - grouped bar charts as PNG files with nothing beyond libc (see plot.h).
 *
 * Three stages. layout() sizes the title, legend, axes and group labels from the data;
 * draw() paints an 8-bit canvas of palette indices with a built-in 5x7 font; encode()
 * makes an indexed-colour PNG whose IDAT is a zlib stream written here: one DEFLATE block
 * with the fixed Huffman codes and greedy LZ77 matches at distance 1 (runs of a colour),
 * one row up (bars and grid go on down the image) and the last place the same 3 bytes
 * were seen (repeated text). That is all a flat-coloured chart needs: 1000x600 comes to
 * a few tens of KB. No libm either, so `ulpo` links nothing new: the axis arithmetic
 * is done by hand. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plot.h"

#define MAX_SIDE	8192	/* pixels; anything bigger is a mistake, not a chart */
#define MAX_GROUPS	4096	/* keeps every pixel sum well inside an int */
#define DEF_W		1000
#define DEF_H		600
#define DEF_MAX_W	4000

#define GW		5	/* glyph columns */
#define GH		9	/* glyph rows: 7 above the baseline, 2 for descenders */
#define CAP		7	/* height of capitals and digits */
#define CW		6	/* advance per character */
#define LH		12	/* line height */
#define MARGIN		16
#define SWATCH		9	/* legend colour square */
#define LEGEND_GAP	22	/* between legend entries */
#define TEXT_MAX	128	/* characters kept of any one string */
#define LAB_LINES	4	/* most lines of a group label */
#define LAB_CHARS	48	/* most characters on one line of it */
#define LAB_SPACE	14	/* at least this far apart */
#define BAR_MAX		72	/* wider bars look like blocks, not bars */

/* Palette indices; the canvas holds these, and the PNG is indexed colour. */
enum { C_BG, C_TEXT, C_AXIS, C_GRID, C_MUTED, C_SERIES, C_COUNT = C_SERIES + PLOT_MAX_SERIES };

static const uint8_t palette[C_COUNT][3] = {
	{ 0xff, 0xff, 0xff },	/* background */
	{ 0x22, 0x22, 0x22 },	/* text */
	{ 0x44, 0x44, 0x44 },	/* axes */
	{ 0xe3, 0xe3, 0xe3 },	/* grid */
	{ 0x96, 0x96, 0x96 },	/* "n/a" */
	/* Okabe and Ito's colour-blind safe set; yellow comes late as it is faint on
	 * white, and a mid grey stands in for their black, which would read as text. */
	{ 0x00, 0x72, 0xb2 },	/* blue */
	{ 0xe6, 0x9f, 0x00 },	/* orange */
	{ 0x00, 0x9e, 0x73 },	/* bluish green */
	{ 0xd5, 0x5e, 0x00 },	/* vermillion */
	{ 0x56, 0xb4, 0xe9 },	/* sky blue */
	{ 0xcc, 0x79, 0xa7 },	/* reddish purple */
	{ 0xf0, 0xe4, 0x42 },	/* yellow */
	{ 0x70, 0x70, 0x70 },	/* grey */
};

/* ASCII 32..126, 5 columns (bit 4 is the left one) by 9 rows; the baseline is under
 * row 6, and g j p q y descend into rows 7 and 8. */
static const uint8_t font[95][GH] = {
	{ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 },	/*   */
	{ 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00 },	/* ! */
	{ 0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 },	/* " */
	{ 0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a, 0x00, 0x00 },	/* # */
	{ 0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04, 0x00, 0x00 },	/* $ */
	{ 0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00 },	/* % */
	{ 0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d, 0x00, 0x00 },	/* & */
	{ 0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 },	/* ' */
	{ 0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00 },	/* ( */
	{ 0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00 },	/* ) */
	{ 0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00, 0x00, 0x00 },	/* * */
	{ 0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00, 0x00, 0x00 },	/* + */
	{ 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08, 0x00 },	/* , */
	{ 0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00 },	/* - */
	{ 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x00, 0x00 },	/* . */
	{ 0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00 },	/* / */
	{ 0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e, 0x00, 0x00 },	/* 0 */
	{ 0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00 },	/* 1 */
	{ 0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00 },	/* 2 */
	{ 0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e, 0x00, 0x00 },	/* 3 */
	{ 0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02, 0x00, 0x00 },	/* 4 */
	{ 0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e, 0x00, 0x00 },	/* 5 */
	{ 0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e, 0x00, 0x00 },	/* 6 */
	{ 0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00 },	/* 7 */
	{ 0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e, 0x00, 0x00 },	/* 8 */
	{ 0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c, 0x00, 0x00 },	/* 9 */
	{ 0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00, 0x00, 0x00 },	/* : */
	{ 0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08, 0x00, 0x00 },	/* ; */
	{ 0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00 },	/* < */
	{ 0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00 },	/* = */
	{ 0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00 },	/* > */
	{ 0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00 },	/* ? */
	{ 0x0e, 0x11, 0x17, 0x15, 0x17, 0x10, 0x0f, 0x00, 0x00 },	/* @ */
	{ 0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00, 0x00 },	/* A */
	{ 0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e, 0x00, 0x00 },	/* B */
	{ 0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e, 0x00, 0x00 },	/* C */
	{ 0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c, 0x00, 0x00 },	/* D */
	{ 0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f, 0x00, 0x00 },	/* E */
	{ 0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00 },	/* F */
	{ 0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f, 0x00, 0x00 },	/* G */
	{ 0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00, 0x00 },	/* H */
	{ 0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00 },	/* I */
	{ 0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c, 0x00, 0x00 },	/* J */
	{ 0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00 },	/* K */
	{ 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f, 0x00, 0x00 },	/* L */
	{ 0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00 },	/* M */
	{ 0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00 },	/* N */
	{ 0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00 },	/* O */
	{ 0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00 },	/* P */
	{ 0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d, 0x00, 0x00 },	/* Q */
	{ 0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11, 0x00, 0x00 },	/* R */
	{ 0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e, 0x00, 0x00 },	/* S */
	{ 0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00 },	/* T */
	{ 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00 },	/* U */
	{ 0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00 },	/* V */
	{ 0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a, 0x00, 0x00 },	/* W */
	{ 0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11, 0x00, 0x00 },	/* X */
	{ 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00 },	/* Y */
	{ 0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f, 0x00, 0x00 },	/* Z */
	{ 0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e, 0x00, 0x00 },	/* [ */
	{ 0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00, 0x00 },	/* \ */
	{ 0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e, 0x00, 0x00 },	/* ] */
	{ 0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 },	/* ^ */
	{ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x00 },	/* _ */
	{ 0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 },	/* ` */
	{ 0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f, 0x00, 0x00 },	/* a */
	{ 0x10, 0x10, 0x1e, 0x11, 0x11, 0x11, 0x1e, 0x00, 0x00 },	/* b */
	{ 0x00, 0x00, 0x0e, 0x11, 0x10, 0x11, 0x0e, 0x00, 0x00 },	/* c */
	{ 0x01, 0x01, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x00, 0x00 },	/* d */
	{ 0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e, 0x00, 0x00 },	/* e */
	{ 0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08, 0x00, 0x00 },	/* f */
	{ 0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e },	/* g */
	{ 0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00 },	/* h */
	{ 0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00 },	/* i */
	{ 0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c },	/* j */
	{ 0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00 },	/* k */
	{ 0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00 },	/* l */
	{ 0x00, 0x00, 0x1a, 0x15, 0x15, 0x15, 0x15, 0x00, 0x00 },	/* m */
	{ 0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00 },	/* n */
	{ 0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00 },	/* o */
	{ 0x00, 0x00, 0x1e, 0x11, 0x11, 0x11, 0x1e, 0x10, 0x10 },	/* p */
	{ 0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x01 },	/* q */
	{ 0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00 },	/* r */
	{ 0x00, 0x00, 0x0f, 0x10, 0x0e, 0x01, 0x1e, 0x00, 0x00 },	/* s */
	{ 0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00 },	/* t */
	{ 0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d, 0x00, 0x00 },	/* u */
	{ 0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00 },	/* v */
	{ 0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a, 0x00, 0x00 },	/* w */
	{ 0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x00, 0x00 },	/* x */
	{ 0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e },	/* y */
	{ 0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00 },	/* z */
	{ 0x03, 0x04, 0x04, 0x08, 0x04, 0x04, 0x03, 0x00, 0x00 },	/* { */
	{ 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00 },	/* | */
	{ 0x18, 0x04, 0x04, 0x02, 0x04, 0x04, 0x18, 0x00, 0x00 },	/* } */
	{ 0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00 },	/* ~ */
};

/* ---- canvas and text ---- */

struct canvas {
	uint8_t *px;		/* w * h palette indices, row after row */
	int w, h;
};

/* Everything is drawn through here, clipped to the canvas, so no layout mistake (or a
 * tiny width and height) can write outside it. */
static void fill(struct canvas *cv, int x, int y, int w, int h, uint8_t c)
{
	int x1 = x + w, y1 = y + h;

	if (x < 0)
		x = 0;
	if (y < 0)
		y = 0;
	if (x1 > cv->w)
		x1 = cv->w;
	if (y1 > cv->h)
		y1 = cv->h;
	for (; x < x1 && y < y1; y++)
		memset(cv->px + (size_t)y * cv->w + x, c, (size_t)(x1 - x));
}

static const uint8_t *glyph(char c)
{
	unsigned char u = (unsigned char)c;

	return font[(u < 32 || u > 126 ? '?' : u) - 32];
}

/* Copy at most `max` characters of `s` into dst (TEXT_MAX bytes) in the font's
 * alphabet: a UTF-8 sequence or control character becomes one '?', white space a space.
 * What does not fit is cut and marked "..". */
static void clip_text(char *dst, const char *s, int max)
{
	int n = 0;

	if (max > TEXT_MAX - 1)
		max = TEXT_MAX - 1;
	if (max < 0)
		max = 0;
	for (; s && *s; s++) {
		unsigned char u = (unsigned char)*s;

		if (u >= 0x80 && u < 0xc0)	/* UTF-8 continuation: its lead was the '?' */
			continue;
		if (n == max) {
			for (int i = n - 2; i < n; i++)
				if (i >= 0)
					dst[i] = '.';
			break;
		}
		if (u == '\t' || u == '\n' || u == '\r')
			u = ' ';
		dst[n++] = u < 32 || u > 126 ? '?' : (char)u;
	}
	dst[n] = '\0';
}

static int text_w(const char *s, int scale)
{
	int n = (int)strlen(s);

	return n ? (n * CW - 1) * scale : 0;
}

/* (x, y) is the top left of the first character's cell. */
static void draw_text(struct canvas *cv, int x, int y, const char *s, int scale, uint8_t c)
{
	for (; *s; s++, x += CW * scale) {
		const uint8_t *g = glyph(*s);

		for (int r = 0; r < GH; r++)
			for (int k = 0; k < GW; k++)
				if (g[r] & (0x10 >> k))
					fill(cv, x + k * scale, y + r * scale, scale, scale, c);
	}
}

/* Turned a quarter left, read bottom to top: (x, y) is the bottom left, where the top
 * of the first character faces the left edge. */
static void draw_text_up(struct canvas *cv, int x, int y, const char *s, uint8_t c)
{
	for (; *s; s++, y -= CW) {
		const uint8_t *g = glyph(*s);

		for (int r = 0; r < GH; r++)
			for (int k = 0; k < GW; k++)
				if (g[r] & (0x10 >> k))
					fill(cv, x + r, y - k, 1, 1, c);
	}
}

/* ---- numbers ---- */

/* The y axis: ticks at 0, step, ..., n * step = top. */
struct axis {
	double step, top, div;	/* tick labels are divided by div and get the suffix */
	int n, decimals;
	char suffix[2];
};

/* A step of 1, 2, 2.5 or 5 times a power of ten that splits the range into 3 to 5
 * intervals: 4 to 6 labelled ticks. The range is the largest value plus 3%, a little
 * air over the tallest bar (its label may go on above the plot, up to the legend). */
static void nice_axis(double vmax, struct axis *ax)
{
	static const double mant[] = { 1, 2, 2.5, 5 };
	double top = vmax * 1.03, dec = 1;
	int k = 0, c, e, si = 0;

	if (!(top > 1e-30))		/* all zero or not measured: an axis of 0..1 */
		top = 1;
	if (top > 1e200)		/* so n * step stays finite */
		top = 1e200;
	while (dec * 10 <= top) {
		dec *= 10;
		k++;
	}
	while (dec > top) {
		dec /= 10;
		k--;
	}
	/* top is in [dec, 10 dec): steps of dec/10 up to 5 dec, smallest first; 5 dec
	 * always fits as it leaves at most 2 intervals. */
	for (c = 0; ; c++) {
		double q;

		ax->step = mant[c % 4] * (c < 4 ? dec / 10 : dec);
		q = top / ax->step;
		ax->n = (int)q;
		if (q - ax->n > 1e-9)
			ax->n++;
		if (ax->n <= 5 || c == 7)
			break;
	}
	ax->top = ax->n * ax->step;
	/* 25000 reads better as 25k, 2500000 as 2.5M. */
	ax->div = 1;
	if (ax->top >= 1e4) {
		while (ax->top / ax->div >= 1000 && si < 4) {
			ax->div *= 1000;
			si++;
		}
	}
	ax->suffix[0] = " kMGT"[si];
	ax->suffix[si > 0] = '\0';
	e = k - 1 + c / 4 - 3 * si;	/* step / div is mant[c % 4] * 10^e */
	ax->decimals = (e < 0 ? -e : 0) + (c % 4 == 2 && e <= 0);
}

static void tick_label(const struct axis *ax, int i, char *buf, size_t n)
{
	double v = i * ax->step / ax->div;

	if (i == 0)
		snprintf(buf, n, "0");
	else if (ax->decimals > 6)	/* tiny units: fixed point would be all zeros */
		snprintf(buf, n, "%.3g", v);
	else
		snprintf(buf, n, "%.*f%s", ax->decimals, v, ax->suffix);
}

/* About three significant digits: "2.10", "48.5", "731", "12.3k", "1.25M". */
static void value_label(double v, char *buf, size_t n)
{
	static const char *const sfx[] = { "", "k", "M", "G", "T" };
	int si = 0;

	if (v >= 1e4) {
		while (v >= 1000 && si < 4) {
			v /= 1000;
			si++;
		}
	}
	if (v == 0)
		snprintf(buf, n, "0");
	else if (v < 0.01)
		snprintf(buf, n, "%.2g", v);
	else
		snprintf(buf, n, "%.*f%s", v < 10 ? 2 : v < 100 ? 1 : 0, v, sfx[si]);
}

/* ---- layout ---- */

struct layout {
	int w, h;
	int title_scale, title_y;
	int legend_y, legend_bottom;
	int pl, pt, pr, pb;	/* bars fill [pl, pr) x [pt, pb); the axes are row pb
				 * and column pl - 1 */
	int lab_chars, lab_lines;
	struct axis ax;
	char title[TEXT_MAX], ylabel[TEXT_MAX];
};

/* Word wrap of a group label into lines of at most `max` characters: break at spaces
 * or after '-', '/', '_' or ','; cut a word longer than a line. Text beyond LAB_LINES
 * lines is dropped, *cut set and the last line marked "..". Returns the line count. */
static int wrap(const char *label, int max, char lines[LAB_LINES][LAB_CHARS + 1], bool *cut)
{
	char s[TEXT_MAX];
	const char *p = s;
	int n = 0;

	if (max > LAB_CHARS)
		max = LAB_CHARS;
	if (max < 1)
		max = 1;
	clip_text(s, label, TEXT_MAX - 1);
	while (*p == ' ')
		p++;
	for (; *p && n < LAB_LINES; n++) {
		int len = (int)strlen(p), take = len;

		if (len > max) {
			for (take = max; take > 0; take--)
				if (p[take] == ' ' || strchr("-/_,", p[take - 1]))
					break;
			if (take == 0)
				take = max;
		}
		while (take > 0 && p[take - 1] == ' ')
			take--;
		memcpy(lines[n], p, (size_t)take);
		lines[n][take] = '\0';
		for (p += take; *p == ' '; p++)
			;
	}
	*cut = *p != '\0';
	if (*cut && n > 0) {
		char *last = lines[n - 1];
		int len = (int)strlen(last);

		if (len + 2 > max)
			len = max > 2 ? max - 2 : 0;
		strcpy(last + len, "..");
	}
	return n;
}

/* Characters per line a label needs to fit in 3 lines, for the default width; 8 at
 * least, so short labels do not make narrow groups. */
static int label_need(const char *label)
{
	char lines[LAB_LINES][LAB_CHARS + 1];
	bool cut;
	int max;

	for (max = 8; max < LAB_CHARS; max++)
		if (wrap(label, max, lines, &cut) <= 3 && !cut)
			break;
	return max;
}

static int legend_entry(const struct plot_bars *p, size_t i, int avail, char *name)
{
	clip_text(name, p->series[i].name, (avail - SWATCH - 6) / CW);
	return SWATCH + 6 + text_w(name, 1);
}

/* Lays out the legend in centred rows under the title, drawing it if cv is given.
 * Returns the number of rows. */
static int legend(struct canvas *cv, const struct plot_bars *p, const struct layout *L)
{
	int avail = L->w - 2 * MARGIN, rows = 0;
	char name[TEXT_MAX];
	size_t i = 0, j;

	while (i < p->nseries) {
		int row_w = 0, x, y = L->legend_y + rows * (LH + 4);

		for (j = i; j < p->nseries; j++) {
			int add = legend_entry(p, j, avail, name) + (j > i ? LEGEND_GAP : 0);

			if (j > i && row_w + add > avail)
				break;
			row_w += add;
		}
		for (x = (L->w - row_w) / 2; cv && i < j; i++) {
			int ew = legend_entry(p, i, avail, name);

			fill(cv, x, y - 1, SWATCH, SWATCH, (uint8_t)(C_SERIES + i));
			draw_text(cv, x + SWATCH + 6, y, name, 1, C_TEXT);
			x += ew + LEGEND_GAP;
		}
		i = j;
		rows++;
	}
	return rows;
}

static int group_x(const struct layout *L, size_t g, size_t ngroups)
{
	return L->pl + (int)((long long)(L->pr - L->pl) * (long long)g / (long long)ngroups);
}

/* Across: the tick labels set the left margin. Without a width, each group gets room
 * for its label in 3 lines and for a value over each of its bars. */
static void layout_x(struct layout *L, const struct plot_bars *p)
{
	char buf[32];
	int tick_w = 0;

	for (int i = 0; i <= L->ax.n; i++) {
		tick_label(&L->ax, i, buf, sizeof(buf));
		if (text_w(buf, 1) > tick_w)
			tick_w = text_w(buf, 1);
	}
	clip_text(L->ylabel, p->ylabel, TEXT_MAX - 1);
	L->pl = MARGIN + (L->ylabel[0] ? GH + 10 : 0) + tick_w + 10;

	L->w = (int)p->width;
	if (!L->w) {
		int need = (int)p->nseries * 26 + 24;	/* "2.10" over 8 bars */

		for (size_t g = 0; g < p->ngroups; g++) {
			int n = label_need(p->groups[g]) * CW + LAB_SPACE;

			if (n > need)
				need = n;
		}
		L->w = L->pl + (int)p->ngroups * need + MARGIN + 8;
		L->w = L->w < DEF_W ? DEF_W : L->w > DEF_MAX_W ? DEF_MAX_W : L->w;
	}
	L->pr = L->w - MARGIN - 8;
	if (L->pr <= L->pl)
		L->pr = L->pl + 1;
	L->lab_chars = ((L->pr - L->pl) / (int)p->ngroups - LAB_SPACE) / CW;
}

/* Down: the title (twice the size if it fits, else plain and cut to the width), the
 * legend rows, the plot, then as many lines as the longest group label wraps to.
 * Without a height, the plot gets at least 300 pixels. */
static void layout_y(struct layout *L, const struct plot_bars *p)
{
	char lines[LAB_LINES][LAB_CHARS + 1];
	int top, bottom;
	bool cut;

	clip_text(L->title, p->title, (L->w - 2 * MARGIN) / CW);
	L->title_scale = text_w(L->title, 2) <= L->w - 2 * MARGIN ? 2 : 1;
	L->title_y = MARGIN - 4;
	top = L->title_y + (L->title[0] ? GH * L->title_scale + 8 : 0);
	L->legend_y = top + 1;
	L->legend_bottom = L->legend_y + legend(NULL, p, L) * (LH + 4) - 4;
	top = L->legend_bottom + 14;

	L->lab_lines = 1;
	for (size_t g = 0; g < p->ngroups; g++) {
		int n = wrap(p->groups[g], L->lab_chars, lines, &cut);

		if (n > L->lab_lines)
			L->lab_lines = n;
	}
	bottom = 8 + L->lab_lines * LH + MARGIN - 4;

	L->h = (int)p->height;
	if (!L->h) {
		L->h = top + 300 + bottom;
		L->h = L->h < DEF_H ? DEF_H : L->h > MAX_SIDE ? MAX_SIDE : L->h;
	}
	L->pt = top;
	L->pb = L->h - bottom;
	if (L->pb <= L->pt)
		L->pb = L->pt + 1;
}

static void layout(struct layout *L, const struct plot_bars *p)
{
	double vmax = 0;

	for (size_t s = 0; s < p->nseries; s++)
		for (size_t g = 0; g < p->ngroups; g++)
			if (p->series[s].values[g] > vmax)	/* false for NAN */
				vmax = p->series[s].values[g];
	nice_axis(vmax, &L->ax);
	layout_x(L, p);
	layout_y(L, p);
}

/* ---- drawing ---- */

/* Where the bars of group g go: centred in the group with a tenth of its width free on
 * either side, a small gap between bars of the group. Sized from the narrowest group so
 * that every bar has the same width. */
static int bar_slots(const struct layout *L, const struct plot_bars *p, size_t g, int *bw,
		     int *gap)
{
	int gx = group_x(L, g, p->ngroups), gw = group_x(L, g + 1, p->ngroups) - gx;
	int gmin = (L->pr - L->pl) / (int)p->ngroups, ns = (int)p->nseries;
	int pad = gmin / 10 > 1 ? gmin / 10 : 1, inner = gmin - 2 * pad;

	*gap = inner / ns >= 10 ? 2 : inner / ns >= 5 ? 1 : 0;
	*bw = (inner - (ns - 1) * *gap) / ns;
	if (*bw < 1)
		*bw = 1;
	if (*bw > BAR_MAX)
		*bw = BAR_MAX;
	return gx + (gw - ns * *bw - (ns - 1) * *gap) / 2;
}

static void draw_grid(struct canvas *cv, const struct layout *L)
{
	char buf[32];

	for (int i = 0; i <= L->ax.n; i++) {
		int y = L->pb - (int)((long long)(L->pb - L->pt) * i / L->ax.n);

		if (i)
			fill(cv, L->pl, y, L->pr - L->pl, 1, C_GRID);
		fill(cv, L->pl - 5, y, 4, 1, C_AXIS);
		tick_label(&L->ax, i, buf, sizeof(buf));
		draw_text(cv, L->pl - 9 - text_w(buf, 1), y - CAP / 2, buf, 1, C_TEXT);
	}
}

/* A label for the bar at x (width bw, top at y): across if it fits the bar and the gap
 * beside it, else turned upright if the bar is as wide as a character is tall, else
 * none. Never past the bar's own slot, so it cannot cover a neighbour; never into the
 * legend. */
static void bar_label(struct canvas *cv, const struct layout *L, int x, int bw, int gap,
		      int y, const char *s, uint8_t c)
{
	int tw = text_w(s, 1);

	if (tw <= bw + gap) {
		if (y - 3 - CAP >= L->legend_bottom + 2)
			draw_text(cv, x + (bw - tw) / 2, y - 3 - CAP, s, 1, c);
	} else if (bw + gap >= CAP + 1) {
		if (y - 4 - tw >= L->legend_bottom + 2)
			draw_text_up(cv, x + (bw - CAP) / 2, y - 4, s, c);
	}
}

static void draw_bars(struct canvas *cv, const struct layout *L, const struct plot_bars *p)
{
	int ph = L->pb - L->pt;
	char buf[32];

	for (size_t g = 0; g < p->ngroups; g++) {
		int bw, gap, x = bar_slots(L, p, g, &bw, &gap);

		for (size_t s = 0; s < p->nseries; s++, x += bw + gap) {
			double v = p->series[s].values[g];
			int h;

			if (isnan(v)) {
				bar_label(cv, L, x, bw, gap, L->pb, "n/a", C_MUTED);
				continue;
			}
			h = (int)(v / L->ax.top * ph + 0.5);
			if (h < 1 && v > 0)	/* measured and not zero: show it */
				h = 1;
			if (h > ph)
				h = ph;
			fill(cv, x, L->pb - h, bw, h, (uint8_t)(C_SERIES + s));
			value_label(v, buf, sizeof(buf));
			bar_label(cv, L, x, bw, gap, L->pb - h, buf, C_TEXT);
		}
	}
}

static void draw_groups(struct canvas *cv, const struct layout *L, const struct plot_bars *p)
{
	char lines[LAB_LINES][LAB_CHARS + 1];
	bool cut;

	for (size_t g = 0; g < p->ngroups; g++) {
		int gx = group_x(L, g, p->ngroups), gw = group_x(L, g + 1, p->ngroups) - gx;
		int n = wrap(p->groups[g], L->lab_chars, lines, &cut);

		for (int i = 0; i < n; i++)
			draw_text(cv, gx + (gw - text_w(lines[i], 1)) / 2, L->pb + 8 + i * LH,
				  lines[i], 1, C_TEXT);
	}
}

static void draw(struct canvas *cv, const struct layout *L, const struct plot_bars *p)
{
	char s[TEXT_MAX];

	draw_text(cv, (L->w - text_w(L->title, L->title_scale)) / 2, L->title_y, L->title,
		  L->title_scale, C_TEXT);
	legend(cv, p, L);
	draw_grid(cv, L);
	draw_bars(cv, L, p);
	fill(cv, L->pl - 1, L->pt, 1, L->pb - L->pt + 1, C_AXIS);
	fill(cv, L->pl - 1, L->pb, L->pr - L->pl + 1, 1, C_AXIS);
	draw_groups(cv, L, p);
	/* The y label runs up the left edge, centred on the plot, cut to its height. */
	clip_text(s, L->ylabel, (L->pb - L->pt) / CW);
	draw_text_up(cv, MARGIN, (L->pt + L->pb) / 2 + text_w(s, 1) / 2, s, C_TEXT);
}

/* ---- PNG and zlib ---- */

struct zout {			/* DEFLATE bits, least significant first */
	uint8_t *p;
	size_t len;
	uint64_t acc;
	unsigned int nbits;
};

static void put_bits(struct zout *z, uint32_t v, unsigned int n)
{
	z->acc |= (uint64_t)v << z->nbits;
	z->nbits += n;
	while (z->nbits >= 8) {
		z->p[z->len++] = (uint8_t)z->acc;
		z->acc >>= 8;
		z->nbits -= 8;
	}
}

/* Huffman codes are the one thing DEFLATE packs most significant bit first. */
static void put_code(struct zout *z, uint32_t code, unsigned int n)
{
	uint32_t r = 0;

	for (unsigned int i = 0; i < n; i++)
		r |= ((code >> i) & 1) << (n - 1 - i);
	put_bits(z, r, n);
}

/* The fixed literal/length code of RFC 1951 3.2.6. */
static void put_sym(struct zout *z, unsigned int sym)
{
	if (sym < 144)
		put_code(z, 0x30 + sym, 8);
	else if (sym < 256)
		put_code(z, 0x190 + sym - 144, 9);
	else if (sym < 280)
		put_code(z, sym - 256, 7);
	else
		put_code(z, 0xc0 + sym - 280, 8);
}

static const uint16_t len_base[29] = {
	3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
	35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258,
};
static const uint8_t len_extra[29] = {
	0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
	3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
};
static const uint16_t dist_base[30] = {
	1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
	257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
};
static const uint8_t dist_extra[30] = {
	0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
	7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
};

static void put_match(struct zout *z, unsigned int len, unsigned int dist)
{
	int i = 28;

	while (len_base[i] > len)
		i--;
	put_sym(z, 257 + (unsigned int)i);
	put_bits(z, len - len_base[i], len_extra[i]);
	for (i = 29; dist_base[i] > dist; i--)
		;
	put_code(z, (uint32_t)i, 5);	/* fixed distance codes: 5 bits each */
	put_bits(z, dist - dist_base[i], dist_extra[i]);
}

#define WINDOW		32768
#define MIN_MATCH	3
#define MAX_MATCH	258
#define HASH_BITS	12

static unsigned int hash3(const uint8_t *d)
{
	return ((uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16) * 2654435761u >>
	       (32 - HASH_BITS);
}

static unsigned int match_len(const uint8_t *d, size_t i, size_t dist, size_t max)
{
	unsigned int n = 0;

	while (n < max && d[i + n] == d[i + n - dist])
		n++;
	return n;
}

/* One final block with the fixed codes; greedy matching against three candidates. The
 * worst case is 31 bits for a 3-byte match, under 11 bits a byte: deflate_bound(). */
static void deflate_fixed(struct zout *z, const uint8_t *d, size_t n, size_t row)
{
	int32_t head[1 << HASH_BITS];
	size_t i = 0;

	for (size_t k = 0; k < sizeof(head) / sizeof(head[0]); k++)
		head[k] = -1;
	put_bits(z, 1, 1);		/* BFINAL */
	put_bits(z, 1, 2);		/* BTYPE 01: fixed Huffman codes */
	while (i < n) {
		size_t max = n - i < MAX_MATCH ? n - i : MAX_MATCH, cand[3] = { 1, row, 0 };
		unsigned int best = 0, len, step;
		size_t dist = 0;

		if (i + 2 < n && head[hash3(d + i)] >= 0)
			cand[2] = i - (size_t)head[hash3(d + i)];
		for (int c = 0; c < 3; c++) {
			if (!cand[c] || cand[c] > i || cand[c] > WINDOW)
				continue;
			len = match_len(d, i, cand[c], max);
			if (len > best)
				best = len, dist = cand[c];
		}
		if (best >= MIN_MATCH) {
			put_match(z, best, (unsigned int)dist);
			step = best;
		} else {
			put_sym(z, d[i]);
			step = 1;
		}
		for (; step; step--, i++)
			if (i + 2 < n)
				head[hash3(d + i)] = (int32_t)i;
	}
	put_sym(z, 256);		/* end of block */
	if (z->nbits)
		put_bits(z, 0, 8 - z->nbits);
}

static size_t deflate_bound(size_t n)
{
	return n + n / 2 + 16;
}

static uint32_t adler32(const uint8_t *d, size_t n)
{
	uint32_t a = 1, b = 0;

	while (n) {
		size_t k = n < 5552 ? n : 5552;	/* the most bytes before b can overflow */

		for (n -= k; k; k--) {
			a += *d++;
			b += a;
		}
		a %= 65521;
		b %= 65521;
	}
	return b << 16 | a;
}

struct png {
	uint8_t *p;
	size_t len;
	uint32_t crc[256];	/* computed per call: 2 KB of work, no shared state */
};

static void crc_init(uint32_t t[256])
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		t[i] = c;
	}
}

static uint32_t png_crc(const uint32_t t[256], const uint8_t *d, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--)
		c = t[(c ^ *d++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Where the next chunk's data goes: callers write it in place, then frame it. */
static uint8_t *chunk_data(struct png *png)
{
	return png->p + png->len + 8;
}

static void chunk(struct png *png, const char *type, size_t dlen)
{
	uint8_t *c = png->p + png->len;

	put_be32(c, (uint32_t)dlen);
	memcpy(c + 4, type, 4);
	put_be32(c + 8 + dlen, png_crc(png->crc, c + 4, dlen + 4));
	png->len += dlen + 12;
}

static int encode(const struct canvas *cv, uint8_t **out, size_t *outlen)
{
	size_t stride = (size_t)cv->w + 1, raw_len = stride * (size_t)cv->h;
	size_t cap = 8 + 25 + 12 + sizeof(palette) + 12 + 2 + deflate_bound(raw_len) + 4 + 12;
	uint8_t *raw = malloc(raw_len), *d;
	struct png png = { .p = malloc(cap) };
	struct zout z;

	if (!raw || !png.p) {
		free(raw);
		free(png.p);
		return -ENOMEM;
	}
	/* Filter type 0 (none) on every row: with indexed colour the others rarely help,
	 * and the match one row up does what the Up filter would. */
	for (int y = 0; y < cv->h; y++) {
		raw[y * stride] = 0;
		memcpy(raw + y * stride + 1, cv->px + (size_t)y * cv->w, (size_t)cv->w);
	}
	crc_init(png.crc);
	memcpy(png.p, "\x89PNG\r\n\x1a\n", 8);
	png.len = 8;

	d = chunk_data(&png);
	put_be32(d, (uint32_t)cv->w);
	put_be32(d + 4, (uint32_t)cv->h);
	d[8] = 8;			/* bits per palette index */
	d[9] = 3;			/* indexed colour */
	d[10] = d[11] = d[12] = 0;	/* deflate, adaptive filters, not interlaced */
	chunk(&png, "IHDR", 13);

	memcpy(chunk_data(&png), palette, sizeof(palette));
	chunk(&png, "PLTE", sizeof(palette));

	/* zlib: CM 8 (deflate) with a 32 KiB window, no dictionary; 0x7801 is a multiple
	 * of 31 as the header check wants. */
	d = chunk_data(&png);
	d[0] = 0x78;
	d[1] = 0x01;
	z = (struct zout){ .p = d + 2 };
	deflate_fixed(&z, raw, raw_len, stride);
	put_be32(d + 2 + z.len, adler32(raw, raw_len));
	chunk(&png, "IDAT", 2 + z.len + 4);
	chunk(&png, "IEND", 0);

	free(raw);
	*out = png.p;
	*outlen = png.len;
	return 0;
}

/* ---- file ---- */

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Write path.tmp and rename it over path, so a reader (a browser refreshing the
 * picture) sees the old chart or the new one, never half of one. No fsync: a chart
 * lost in a crash is made again by the next run. */
static int write_file(const char *path, const uint8_t *p, size_t n)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + sizeof(".tmp"));
	int fd, err;

	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", sizeof(".tmp"));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = -errno;
		free(tmp);
		return err;
	}
	err = write_all(fd, p, n);
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	free(tmp);
	return err;
}

/* ---- entry ---- */

static int check(const char *path, const struct plot_bars *p)
{
	if (!path || !*path || !p || !p->groups || !p->series || !p->ngroups || !p->nseries ||
	    p->ngroups > MAX_GROUPS || p->nseries > PLOT_MAX_SERIES ||
	    p->width > MAX_SIDE || p->height > MAX_SIDE)
		return -EINVAL;
	for (size_t s = 0; s < p->nseries; s++) {
		const double *v = p->series[s].values;

		if (!v)
			return -EINVAL;
		for (size_t g = 0; g < p->ngroups; g++)
			if (!isnan(v[g]) && (v[g] < 0 || isinf(v[g])))
				return -EINVAL;
	}
	return 0;
}

_Static_assert(C_BG == 0, "calloc() paints the background");

int plot_bars_png(const char *path, const struct plot_bars *p)
{
	struct layout L;
	struct canvas cv;
	uint8_t *png;
	size_t len;
	int err = check(path, p);

	if (err)
		return err;
	layout(&L, p);
	cv = (struct canvas){ .w = L.w, .h = L.h };
	cv.px = calloc((size_t)cv.w * (size_t)cv.h, 1);
	if (!cv.px)
		return -ENOMEM;
	draw(&cv, &L, p);
	err = encode(&cv, &png, &len);
	free(cv.px);
	if (err)
		return err;
	err = write_file(path, png, len);
	free(png);
	return err;
}
