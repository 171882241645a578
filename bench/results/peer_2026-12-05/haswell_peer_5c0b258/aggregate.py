#!/usr/bin/env python3
"""aggregate.py: this folder's sweeps (run.sh) against both peers: bprop/PyTorch ratios by
../final_c262159/aggregate.py's report(), then PyTorch's rate with OPENBLAS_CORETYPE=Haswell over
its rate with OpenBLAS's own choice (Cooperlake), medians of the rounds. Run here."""
import collections, csv, importlib.util, os, statistics
spec = importlib.util.spec_from_file_location("agg", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", "final_c262159", "aggregate.py"))
agg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(agg)
grids = ['h256_sparse', 'h256_sparse_avx2', 'h256_dense', 'wide']
for peer, tag in (('own choice (Cooperlake)', ''), ('Haswell', '_hsw')):
    print(f"==== peer: {peer}")
    agg.report([(g, [g + tag + '_a', g + tag + '_b']) for g in grids], peak=(tag == ''))
print("==== PyTorch samples/s, Haswell over Cooperlake (median rates over each grid's 10 rounds)")
for g in grids:
    rate = collections.defaultdict(list)
    for tag in ('', '_hsw'):
        for run in 'ab':
            for row in csv.DictReader(open(f"{g}{tag}_{run}_rounds.csv")):
                if row['impl'] == 'pytorch':
                    rate[(row['threads'], row['batch'], row['hidden'], tag, row['peer_arch'])].append(
                        float(row['samples_per_s']))
    for k in sorted({k[:3] for k in rate}, key=lambda k: (int(k[2]), int(k[0]), int(k[1]))):
        own = [v for kk, v in rate.items() if kk[:3] == k and kk[3] == ''][0]
        hsw = [v for kk, v in rate.items() if kk[:3] == k and kk[3] == '_hsw'][0]
        arch = sorted({kk[4] for kk in rate if kk[:3] == k})
        print(f"  {g} {'x'.join(k)}: {statistics.median(hsw) / statistics.median(own):.3f} "
              f"({statistics.median(hsw) / 1e3:.0f}k / {statistics.median(own) / 1e3:.0f}k; {', '.join(arch)})")
