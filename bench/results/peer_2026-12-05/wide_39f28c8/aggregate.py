#!/usr/bin/env python3
"""aggregate.py: medians of every per-round bprop/PyTorch ratio over the wide sweeps (wide_*_rounds.csv)
of the folder it runs in (here, and ../wide_ce1f950: python3 ../wide_39f28c8/aggregate.py)."""
import csv, statistics, collections, glob
names = sorted(f[:-len('_rounds.csv')] for f in glob.glob('wide_*_rounds.csv'))
d = collections.defaultdict(dict)
for n in names:
    for row in csv.DictReader(open(n + '_rounds.csv')):
        d[(row['threads'], row['batch'], row['hidden'])].setdefault((n, row['round']), {})[row['impl']] = float(row['samples_per_s'])
print(f"wide avx512: median of {len(names) * 5} per-round bprop/PyTorch ratios [bprop median samples/s, PyTorch median]")
for k, v in sorted(d.items(), key=lambda x: (int(x[0][2]), int(x[0][0]), int(x[0][1]))):
    rat = [x['bprop'] / x['pytorch'] for x in v.values()]
    b = [x['bprop'] for x in v.values()]
    p = [x['pytorch'] for x in v.values()]
    print(f"  {k[0]}x{k[1]}x{k[2]}: {statistics.median(rat):.2f}  (range {min(rat):.2f}-{max(rat):.2f}; bprop {statistics.median(b)/1e3:.1f}k, pytorch {statistics.median(p)/1e3:.1f}k)")
for (t, bt, h), v in sorted(d.items()):
    if t == '2':
        one = d[('1', bt, h)]
        r = [v[key]['bprop'] / one[key]['bprop'] for key in v if key in one]
        rp = [v[key]['pytorch'] / one[key]['pytorch'] for key in v if key in one]
        print(f"  2t/1t batch {bt} H {h}: bprop {statistics.median(r):.2f} (range {min(r):.2f}-{max(r):.2f}), pytorch {statistics.median(rp):.2f}")
