#!/usr/bin/env python3
"""aggregate.py: medians of every per-round bprop/PyTorch ratio over the sweeps of this folder, and
bprop's % of the FMA peak (run here); the aggregation is ../final_c262159/aggregate.py's report()."""
import importlib.util, os
spec = importlib.util.spec_from_file_location(
    "agg", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "final_c262159", "aggregate.py"))
agg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(agg)
agg.report([('sparse avx512', ['h256_sparse', 'h256_sparse_b']),
            ('sparse avx2', ['h256_sparse_avx2', 'h256_sparse_avx2_b']),
            ('dense avx512', ['h256_dense', 'h256_dense_b']),
            ('wide avx512', ['wide', 'wide_b'])], peak=True)
