#!/usr/bin/env python3
"""npy_predict.py: class probabilities of a model exported by `bprop export`, computed by numpy.

Usage: npy_predict.py DIR INPUT.csv   (INPUT: unlabelled CSV features, one sample per line)
Prints one line per sample, the probabilities comma-separated with 9 significant digits. Loads
the files with numpy.load exactly as written; b1/b2 and mean/scale are used when present:
p = softmax(relu(((x - mean) * scale) @ W1 + b1) @ W2 + b2).
"""
import os
import sys

import numpy as np


def load(d, name):
    p = os.path.join(d, name + ".npy")
    return np.load(p) if os.path.exists(p) else None


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    d = sys.argv[1]
    w1, b1, w2, b2 = (load(d, n) for n in ("W1", "b1", "W2", "b2"))
    mean, scale = load(d, "mean"), load(d, "scale")
    for a in (w1, b1, w2, b2, mean, scale):
        assert a is None or (a.dtype == np.dtype("<f4") and a.flags["C_CONTIGUOUS"])
    x = np.loadtxt(sys.argv[2], delimiter=",", ndmin=2).astype(np.float64)
    if mean is not None:
        x = (x - mean) * scale
    h = x @ w1.astype(np.float64) + (b1 if b1 is not None else 0)
    h = np.maximum(h, 0)
    z = h @ w2.astype(np.float64) + (b2 if b2 is not None else 0)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    for row in p:
        print(",".join("%.9g" % v for v in row))


if __name__ == "__main__":
    main()
