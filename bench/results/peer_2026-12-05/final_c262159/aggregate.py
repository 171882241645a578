#!/usr/bin/env python3
"""aggregate.py: medians of every per-round bprop/PyTorch ratio over the sweeps of this folder (run here);
also the aggregation of the later final_* folders (../aggregate_final.py calls report() with their groups and peak=True)."""
import csv,statistics,collections,sys,os
def report(groups, peak=False):
    """Ratios and 2t/1t per group of sweeps (name, [file stems]); with peak, bprop's % of the FMA peak."""
    for grp,names in groups:
        names=[n for n in names if os.path.exists(n+'_rounds.csv')]
        d=collections.defaultdict(dict)
        for n in names:
            for row in csv.DictReader(open(n+'_rounds.csv')):
                d[(row['threads'],row['batch'],row['hidden'])].setdefault((n,row['round']),{})[row['impl']]=float(row['samples_per_s'])
        print(f"{grp}: median of {len(names)*5} per-round bprop/PyTorch ratios [bprop median samples/s, PyTorch median]")
        for k,v in sorted(d.items(), key=lambda x:(int(x[0][2]),int(x[0][0]),int(x[0][1]))):
            rat=[x['bprop']/x['pytorch'] for x in v.values()]
            b=[x['bprop'] for x in v.values()]; p=[x['pytorch'] for x in v.values()]
            print(f"  {k[0]}x{k[1]}x{k[2]}: {statistics.median(rat):.2f}  (range {min(rat):.2f}-{max(rat):.2f}; bprop {statistics.median(b)/1e3:.0f}k, pytorch {statistics.median(p)/1e3:.0f}k)")
        # 2t/1t bprop
        for (t,bt,h),v in d.items():
            if t=='2':
                one=d[('1',bt,h)]
                r=[v[key]['bprop']/one[key]['bprop'] for key in v if key in one]
                rp=[v[key]['pytorch']/one[key]['pytorch'] for key in v if key in one]
                print(f"  2t/1t batch {bt} H {h}: bprop {statistics.median(r):.2f} (range {min(r):.2f}-{max(r):.2f}), pytorch {statistics.median(rp):.2f}")
    if not peak:
        return
    # % of the FMA peak, bprop: medians over every round of the group's sweeps, by the dense FLOP
    # count (peak_fraction) and on the executed FMAs (exec_fraction)
    for grp,names in groups:
        names=[n for n in names if os.path.exists(n+'_rounds.csv')]
        d=collections.defaultdict(lambda: ([],[]))
        for n in names:
            for row in csv.DictReader(open(n+'_rounds.csv')):
                if row['impl']=='bprop' and row['exec_fraction']:
                    k=(row['threads'],row['batch'],row['hidden'])
                    d[k][0].append(float(row['peak_fraction'])); d[k][1].append(float(row['exec_fraction']))
        print(f"{grp}: bprop % of peak, dense count / executed FMAs (medians)")
        for k,(a,b) in sorted(d.items(), key=lambda x:(int(x[0][2]),int(x[0][0]),int(x[0][1]))):
            print(f"  {k[0]}x{k[1]}x{k[2]}: {100*statistics.median(a):.1f}% / {100*statistics.median(b):.1f}%")

if __name__ == "__main__":
    groups=[('sparse avx512',['h256_sparse','h256_sparse_b','h256_sparse_c']),('sparse avx2',['h256_sparse_avx2','h256_sparse_avx2_b']),('dense avx512',['h256_dense','h256_dense_b']),('wide avx512',['wide','wide_b','wide_final'])]
    report(groups)
