#!/usr/bin/env python3
"""sklearn_compare.py: bprop.MLPClassifier against scikit-learn's MLPClassifier, same settings.

Both: one hidden layer of 256 ReLU units, softmax cross-entropy, minibatch SGD with batch 128,
Nesterov momentum 0.9, learning rate 0.1 held constant (scikit-learn has no cosine schedule), no
L2 penalty, shuffling every epoch, float32 inputs in [0, 1], no early stopping; the same thread
count (scikit-learn's BLAS limited through threadpoolctl). Runs alternate; per-epoch time is the
median over runs of fit time / epochs; test accuracy is on the 10,000 test images.

    PYTHONPATH=build/python /usr/bin/python3 bench/sklearn_compare.py
"""
import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DATA, help=f"Fashion-MNIST IDX directory [{DATA}]")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both [all cores]")
    p.add_argument("--runs", type=int, default=3, help="runs of each, alternating [3]")
    p.add_argument("--train-limit", type=int, default=0, help="first N training samples only (0: all)")
    p.add_argument("--seed", type=int, default=42)
    return p.parse_args()


def bprop_fit(a, X, y):
    import bprop
    clf = bprop.MLPClassifier(hidden=a.hidden, epochs=a.epochs, batch_size=128, lr=0.1, momentum=0.9,
                              nesterov=True, weight_decay=0.0, schedule="constant", shuffle=True,
                              random_state=a.seed, n_jobs=a.threads)
    t0 = time.perf_counter()
    clf.fit(X, y)
    return (time.perf_counter() - t0) / a.epochs, clf


def sklearn_fit(a, X, y):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(a.hidden,), activation="relu", solver="sgd",
                        batch_size=128, learning_rate="constant", learning_rate_init=0.1,
                        momentum=0.9, nesterovs_momentum=True, alpha=0.0, max_iter=a.epochs,
                        shuffle=True, tol=0.0, n_iter_no_change=a.epochs + 1,
                        early_stopping=False, random_state=a.seed)
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(limits=a.threads)
    except ImportError:  # then BLAS uses what it uses; said in the output
        limit = None
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    seconds = (time.perf_counter() - t0) / clf.n_iter_
    if limit is not None:
        limit.restore_original_limits()
    return seconds, clf


def main():
    a = parse()
    import bprop
    X, y = bprop.load_idx(os.path.join(a.data, "train-images-idx3-ubyte.gz"),
                          os.path.join(a.data, "train-labels-idx1-ubyte.gz"))
    Xt, yt = bprop.load_idx(os.path.join(a.data, "t10k-images-idx3-ubyte.gz"),
                            os.path.join(a.data, "t10k-labels-idx1-ubyte.gz"))
    if a.train_limit:
        X, y = np.ascontiguousarray(X[:a.train_limit]), y[:a.train_limit]
    print(f"{len(X)} training, {len(Xt)} test samples; {a.epochs} epochs, hidden {a.hidden}, "
          f"batch 128, {a.threads} threads, bprop kernels {bprop.isa()}", flush=True)
    times = {"bprop": [], "sklearn": []}
    acc = {}
    for i in range(a.runs):
        for name, fit in (("bprop", bprop_fit), ("sklearn", sklearn_fit)):
            seconds, clf = fit(a, X, y)
            times[name].append(seconds)
            acc[name] = clf.score(Xt, yt)
            print(f"run {i + 1} {name:8s}: {seconds:.3f} s/epoch, test accuracy {acc[name]:.4f}",
                  flush=True)
    b, s = statistics.median(times["bprop"]), statistics.median(times["sklearn"])
    print("\n| | s/epoch (median) | test accuracy |\n|---|---|---|")
    print(f"| bprop.MLPClassifier | {b:.3f} | {acc['bprop']:.4f} |")
    print(f"| sklearn MLPClassifier | {s:.3f} | {acc['sklearn']:.4f} |")
    print(f"\nsklearn / bprop time per epoch: {s / b:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
