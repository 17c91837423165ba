#!/usr/bin/env python3
"""check_png.py - decode the PNG charts test_plot writes (tools/plot.c) and check them.

Usage: check_png.py SPEC.txt...

Each SPEC names a PNG next to it and says what it shows:
    png NAME.png
    size W H          0 = the default: then at least minsize
    minsize W H
    check bars        or "structure": the file and a non-blank image only
    series N
    values V0 V1 ...  one line per series, one value per group; nan = not measured

Checks: the signature, every chunk's CRC and order, IHDR, the zlib stream (decompressed
here, Adler-32 included), the five row filters, the size, that the image is not blank,
and for "bars": in each series' colour, one bar per measured non-zero value standing on
a common baseline, heights in proportion to the values (one scale for all series), the
same width for all, left to right by group and by series within a group; and nothing
else of that colour but the legend swatch. Exit 0 when all pass, 1 otherwise.
Python 3 standard library only.
"""
import os
import struct
import sys
import zlib

# tools/plot.c palette: the series colours in order. Keep the two in step.
SERIES_RGB = [
    (0x00, 0x72, 0xB2), (0xE6, 0x9F, 0x00), (0x00, 0x9E, 0x73), (0xD5, 0x5E, 0x00),
    (0x56, 0xB4, 0xE9), (0xCC, 0x79, 0xA7), (0xF0, 0xE4, 0x42), (0x70, 0x70, 0x70),
]
WHITE = (0xFF, 0xFF, 0xFF)
LEGEND_MAX = 20 * 20        # pixels of a series colour that are not bars: the swatch


class Fail(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Fail(msg)


def read_chunks(data):
    need(data[:8] == b'\x89PNG\r\n\x1a\n', 'bad signature')
    pos, chunks = 8, []
    while pos < len(data):
        need(pos + 12 <= len(data), 'truncated chunk header at %d' % pos)
        length, ctype = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        need(len(body) == length and pos + 12 + length <= len(data),
             'truncated %r chunk' % ctype)
        crc, = struct.unpack('>I', data[pos + 8 + length:pos + 12 + length])
        need(crc == zlib.crc32(ctype + body) & 0xFFFFFFFF, 'bad CRC in %r chunk' % ctype)
        chunks.append((ctype, body))
        pos += 12 + length
        if ctype == b'IEND':
            break
    need(pos == len(data), 'data after IEND')
    need(chunks and chunks[0][0] == b'IHDR', 'IHDR is not first')
    need(chunks[-1] == (b'IEND', b''), 'no empty IEND at the end')
    return chunks


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def unfilter(raw, w, h, bpp):
    stride = w * bpp
    need(len(raw) == h * (stride + 1),
         'image data is %d bytes, %dx%d needs %d' % (len(raw), w, h, h * (stride + 1)))
    rows, prev = [], bytes(stride)
    for y in range(h):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        need(ftype <= 4, 'row %d: filter type %d' % (y, ftype))
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                upleft = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + paeth(left, prev[i], upleft)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return rows


def decode(path):
    """The image as rows of (r, g, b) tuples."""
    with open(path, 'rb') as f:
        chunks = read_chunks(f.read())
    ihdr = chunks[0][1]
    need(len(ihdr) == 13, 'IHDR is %d bytes' % len(ihdr))
    w, h, depth, ctype, comp, filt, inter = struct.unpack('>IIBBBBB', ihdr)
    need(w > 0 and h > 0, 'empty image %dx%d' % (w, h))
    need(depth == 8 and ctype in (2, 3), 'depth %d colour type %d: not 8-bit RGB or indexed'
         % (depth, ctype))
    need(comp == 0 and filt == 0 and inter == 0, 'compression/filter/interlace not 0/0/0')
    types = [t for t, _ in chunks]
    need(types.count(b'IHDR') == 1 and types.count(b'IEND') == 1, 'IHDR or IEND repeated')
    idats = [i for i, t in enumerate(types) if t == b'IDAT']
    need(idats and idats == list(range(idats[0], idats[-1] + 1)), 'IDAT missing or split')
    palette = None
    if ctype == 3:
        need(types.count(b'PLTE') == 1 and types.index(b'PLTE') < idats[0],
             'no PLTE before IDAT')
        plte = chunks[types.index(b'PLTE')][1]
        need(len(plte) % 3 == 0 and 0 < len(plte) <= 768, 'PLTE of %d bytes' % len(plte))
        palette = [tuple(plte[i:i + 3]) for i in range(0, len(plte), 3)]
    z = zlib.decompressobj()
    try:
        raw = z.decompress(b''.join(chunks[i][1] for i in idats))
    except zlib.error as e:
        raise Fail('zlib: %s' % e)
    need(z.eof, 'zlib stream not finished')
    need(not z.unused_data, 'bytes after the zlib stream')
    bpp = 3 if ctype == 2 else 1
    rows = unfilter(raw, w, h, bpp)
    if palette:
        need(max(max(r) for r in rows) < len(palette), 'index past the palette')
        return w, h, [[palette[i] for i in r] for r in rows]
    return w, h, [[tuple(r[i:i + 3]) for i in range(0, 3 * w, 3)] for r in rows]


def read_spec(path):
    spec = {'values': []}
    with open(path) as f:
        for line in f:
            key, *rest = line.split()
            if key == 'values':
                spec['values'].append([float(v) for v in rest])
            elif key in ('png', 'check'):
                spec[key] = rest[0]
            else:
                spec[key] = [int(v) for v in rest]
    need(len(spec['values']) == spec['series'][0], 'spec: series and values disagree')
    return spec


def find_bars(img, w, h, nseries):
    """Runs of a series colour along the lowest row that has one (the row on the x axis),
    each with its width and height. Returns {series: [(x, width, height)]}."""
    colour = {rgb: s for s, rgb in enumerate(SERIES_RGB[:nseries])}
    base = max((y for y in range(h) if any(p in colour for p in img[y])), default=None)
    bars = {s: [] for s in range(nseries)}
    if base is None:
        return bars, None
    x = 0
    while x < w:
        s = colour.get(img[base][x])
        if s is None:
            x += 1
            continue
        x0, heights = x, set()
        while x < w and img[base][x] == SERIES_RGB[s]:
            y = base
            while y >= 0 and img[y][x] == SERIES_RGB[s]:
                y -= 1
            heights.add(base - y)
            x += 1
        need(len(heights) == 1, 'series %d: bar at x=%d has a ragged top %s'
             % (s, x0, sorted(heights)))
        bars[s].append((x0, x - x0, heights.pop()))
    return bars, base


def check_bars(img, w, h, spec, counts):
    values = spec['values']
    nseries, ngroups = len(values), len(values[0])
    shown = [[v > 0 for v in vs] for vs in values]          # False for nan and 0
    bars, base = find_bars(img, w, h, nseries)
    if not any(any(row) for row in shown):
        for s in range(nseries):
            need(counts.get(SERIES_RGB[s], 0) <= LEGEND_MAX,
                 'series %d: %d pixels but nothing to show' % (s, counts.get(SERIES_RGB[s], 0)))
        return 'no bars'
    # One bar per shown value, matched to groups in order.
    at = {}
    for s in range(nseries):
        want = [g for g in range(ngroups) if shown[s][g]]
        need(len(bars[s]) == len(want), 'series %d: %d bars, expected %d'
             % (s, len(bars[s]), len(want)))
        for g, bar in zip(want, bars[s]):
            at[s, g] = bar
    widths = {bw for _, bw, _ in at.values()}
    need(len(widths) == 1, 'bars of different widths %s' % sorted(widths))
    # Heights in proportion to the values, one scale for the whole chart.
    k = sum(bh for _, _, bh in at.values()) / sum(values[s][g] for s, g in at)
    for (s, g), (x, _, bh) in at.items():
        want = k * values[s][g]
        need(abs(bh - want) <= 1.5 + 0.02 * want,
             'series %d group %d: bar of %d px, %.1f expected for %g'
             % (s, g, bh, want, values[s][g]))
    # Left to right: groups in order, series in order within a group.
    last_right = -1
    for g in range(ngroups):
        xs = [at[s, g][0] for s in range(nseries) if (s, g) in at]
        if not xs:
            continue
        need(xs == sorted(xs), 'group %d: series out of order' % g)
        need(xs[0] > last_right, 'group %d overlaps the group before' % g)
        last_right = xs[-1] + at[max(s for s in range(nseries) if (s, g) in at), g][1]
    # Pixel counts: each series' bar area in proportion to the sum of its values; the
    # rest of its colour is the legend swatch, which every series has.
    bw = widths.pop()
    for s in range(nseries):
        nbars = sum(1 for ss, _ in at if ss == s)
        area = sum(bw * bh for (ss, _), (_, _, bh) in at.items() if ss == s)
        want = bw * k * sum(values[s][g] for g in range(ngroups) if shown[s][g])
        need(abs(area - want) <= bw * (1.5 * nbars + 0.02 * want / bw),
             'series %d: %d px of bars, %.0f expected' % (s, area, want))
        rest = counts.get(SERIES_RGB[s], 0) - area
        need(0 < rest <= LEGEND_MAX, 'series %d: %d pixels of its colour besides its bars'
             % (s, rest))
    return '%d bars on row %d, %.4g px per unit' % (len(at), base, k)


def check(spec_path):
    spec = read_spec(spec_path)
    w, h, img = decode(os.path.join(os.path.dirname(spec_path), spec['png']))
    for name, got, size, least in (('width', w, spec['size'][0], spec['minsize'][0]),
                                   ('height', h, spec['size'][1], spec['minsize'][1])):
        need(got == size if size else got >= least,
             '%s %d, expected %s' % (name, got, size or 'at least %d' % least))
    counts = {}
    for row in img:
        for p in row:
            counts[p] = counts.get(p, 0) + 1
    nseries = spec['series'][0]
    for s in range(nseries, len(SERIES_RGB)):
        need(SERIES_RGB[s] not in counts, 'colour of series %d in a chart of %d' % (s, nseries))
    if w >= 32 and h >= 32:     # smaller may be all margin
        need(len(counts) >= 2, 'blank image: one colour')
    if spec['check'] == 'structure':
        return '%dx%d, %d colours' % (w, h, len(counts))
    need(img[0][0] == WHITE and img[h - 1][w - 1] == WHITE, 'background is not white')
    need(w * h - counts.get(WHITE, 0) >= w * h // 100, 'nearly blank: under 1% drawn')
    return '%dx%d: %s' % (w, h, check_bars(img, w, h, spec, counts))


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().split('\n\n')[1], file=sys.stderr)
        return 2
    failed = 0
    for spec in argv[1:]:
        try:
            print('ok   %s: %s' % (spec, check(spec)))
        except (Fail, OSError, ValueError, KeyError, IndexError) as e:
            print('FAIL %s: %s' % (spec, e))
            failed += 1
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
