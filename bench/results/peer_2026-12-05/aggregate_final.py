#!/usr/bin/env python3
"""aggregate_final.py: the aggregation of a final_* peer folder (pixels avx512 and avx2, dense, wide):
medians of every per-round bprop/PyTorch ratio and bprop's % of the FMA peak, by
final_c262159/aggregate.py's report().
usage: cd final_FOLDER && /usr/bin/python3 ../aggregate_final.py [AVX2_STEM]
  AVX2_STEM: the stem of the avx2 sweeps (default h256_sparse_avx2; final_d8f3a37's are
  h256_sparse_avx2_249de37)."""
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location(
    "agg", os.path.join(os.path.dirname(os.path.abspath(__file__)), "final_c262159", "aggregate.py"))
agg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(agg)
avx2 = sys.argv[1] if len(sys.argv) > 1 else 'h256_sparse_avx2'
agg.report([('sparse avx512', ['h256_sparse', 'h256_sparse_b']),
            ('sparse avx2', [avx2, avx2 + '_b']),
            ('dense avx512', ['h256_dense', 'h256_dense_b']),
            ('wide avx512', ['wide', 'wide_b'])], peak=True)
