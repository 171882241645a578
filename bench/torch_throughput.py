#!/usr/bin/env python3
"""torch_throughput.py: PyTorch CPU baseline for bench/throughput (same model, grid and CSV)."""

import argparse
import gzip
import math
import os
import struct
import sys
import time

import numpy as np
import torch
from torch import nn

# The same columns as bench/throughput writes (docs/performance.md, "CSV columns", explains
# them). PyTorch computes every dense FMA, so its executed share is 1; it has no split, and
# bprop's kernel set is the one --kernel-set names.
COLUMNS = ("impl,threads,batch,hidden,samples_per_s,gflops,peak_gflops,peak_fraction,"
           "speedup,efficiency,reduce_share,test_acc,parallel,standardize,exec_share,exec_gflops,"
           "exec_fraction,cpu,cpu_isa,kernel_set,peer_blas,peer_blas_file,peer_blas_version,"
           "peer_arch,torch_version")

# Variables that pin OpenBLAS to other kernels than the CPU's own (some machines set
# OPENBLAS_CORETYPE=Haswell, which holds an AVX-512 CPU to AVX2); the sweep scripts unset them
# for this process only.
PINNING_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected a comma-separated list of integers")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"'{text}': every value must be a positive integer")
    return values


def peak_map(text):
    """'1:229.2,2:451.4' -> {1: 229.2, 2: 451.4} (measured by bench/throughput or peak_fma)."""
    peaks = {}
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            threads, gflops = item.split(":")
            peaks[int(threads)] = float(gflops)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{item}': expected THREADS:GFLOPS")
    return peaks


def default_threads():
    procs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    counts, t = [], 1
    while t < procs:
        counts.append(t)
        t *= 2
    return counts + [procs]


def csv_field(value):
    """A value as one CSV field: commas would split it."""
    return "" if value is None else str(value).replace(",", " ")


def cpu_description():
    """The CPU's model name and widest vector ISA, named as bench/host_info.h names them."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model == "unknown":
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    for isa, needs in (("avx512f", {"avx512f"}), ("avx2", {"avx2", "fma"}), ("avx", {"avx"}),
                       ("sse2", {"sse2"})):
        if needs <= flags:
            return model, isa
    return model, "other"


def peer_blas():
    """threadpoolctl's record of the BLAS PyTorch loaded (internal_api, filepath, version and,
    for OpenBLAS, the kernel architecture it chose); empty without threadpoolctl."""
    try:
        import threadpoolctl
    except ImportError:
        return {}
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") == "blas":
            return info
    return {}


def environment_fields(kernel_set):
    """The last eight columns of every row: cpu .. torch_version."""
    model, isa = cpu_description()
    blas = peer_blas()
    return [csv_field(v) for v in (model, isa, kernel_set, blas.get("internal_api"),
                                   blas.get("filepath"), blas.get("version"),
                                   blas.get("architecture"), torch.__version__)]


def read_idx(path, magic):
    """The array stored in an IDX file (plain or gzip), checked against its header."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError) as e:
        sys.exit(f"{path}: cannot read: {e}")
    if len(data) < 4 or struct.unpack(">I", data[:4])[0] != magic:
        sys.exit(f"{path}: byte 0: expected IDX magic 0x{magic:08x}")
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(dims):
        sys.exit(f"{path}: expected {math.prod(dims)} data bytes, found {body.size}")
    return body.reshape(dims)


def load_split(data_dir, prefix):
    """Images as (n, 784) float32 in [0, 1] (as bprop loads them) and int64 labels."""
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"), 0x00000803)
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"), 0x00000801)
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


def load_bprop_model(path):
    """W1 (inputs, hidden), b1, W2 (hidden, classes), b2 and the standardisation (mean, scale), or
    None, from a bprop model file (format version 1, docs/formats.md, "Model files"): little-endian
    header, then the flat float32 parameter block, then the statistics when it has them."""
    with open(path, "rb") as f:
        blob = f.read()
    magic, version, header_len = blob[:8], *struct.unpack_from("<II", blob, 8)
    if magic != b"BPROPMDL" or version != 1:
        raise SystemExit(f"{path}: not a version-1 bprop model file")
    inputs, hidden, classes = struct.unpack_from("<QQQ", blob, 16)
    has_bias, has_std = struct.unpack_from("<II", blob, 40)
    if not has_bias:
        raise SystemExit(f"{path}: the benchmark model has biases")
    count = inputs * hidden + hidden + hidden * classes + classes
    p = np.frombuffer(blob, dtype="<f4", count=count + (2 * inputs if has_std else 0),
                      offset=16 + header_len).astype(np.float32)
    w1 = p[:inputs * hidden].reshape(inputs, hidden)
    b1 = p[inputs * hidden:inputs * hidden + hidden]
    w2 = p[inputs * hidden + hidden:inputs * hidden + hidden + hidden * classes].reshape(hidden, classes)
    b2 = p[inputs * hidden + hidden + hidden * classes:count]
    std = (p[count:count + inputs], p[count + inputs:]) if has_std else None
    return w1, b1, w2, b2, std


def feature_stats(x):
    """bprop_dataset_feature_stats of x (n, D): float64 mean and standard deviation per feature,
    scale = 1 / sd (1 for sd < 1e-12), both rounded to float32. Used without --init-dir; with it,
    the statistics bprop stored in the initial model are used, bit for bit."""
    x = x.numpy()
    mean = x.mean(axis=0, dtype=np.float64)
    sq = np.zeros_like(mean)
    for first in range(0, len(x), 8192):
        sq += ((x[first:first + 8192].astype(np.float64) - mean) ** 2).sum(axis=0)
    sd = np.sqrt(sq / len(x))
    constant = sd < 1e-12
    scale = np.where(constant, 1.0, 1.0 / np.where(constant, 1.0, sd))
    return mean.astype(np.float32), scale.astype(np.float32)


def standardize(x, stats):
    """(x - mean) * scale in float32, as bprop_dataset_standardize computes it."""
    mean, scale = stats
    return (x - torch.from_numpy(mean)) * torch.from_numpy(scale)


def make_model(inputs, hidden, classes, seed, bprop_init, init_dir=None):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    if init_dir:
        # bprop's very weights: nn.Linear stores (out, in), bprop (in, out).
        w1, b1, w2, b2, _ = load_bprop_model(os.path.join(init_dir, f"init_h{hidden}.bpm"))
        with torch.no_grad():
            model[0].weight.copy_(torch.from_numpy(w1.T.copy()))
            model[0].bias.copy_(torch.from_numpy(b1.copy()))
            model[2].weight.copy_(torch.from_numpy(w2.T.copy()))
            model[2].bias.copy_(torch.from_numpy(b2.copy()))
    elif bprop_init:
        # bprop's initialisation: W1 ~ N(0, 2/inputs), W2 ~ N(0, 1/hidden), zero biases.
        with torch.no_grad():
            model[0].weight.normal_(0.0, math.sqrt(2.0 / inputs))
            model[2].weight.normal_(0.0, math.sqrt(1.0 / hidden))
            model[0].bias.zero_()
            model[2].bias.zero_()
    return model


def run_epoch(model, opt, loss_fn, x, y, batch):
    """One pass over (x, y) in order."""
    for first in range(0, len(x), batch):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[first:first + batch]), y[first:first + batch])
        loss.backward()
        opt.step()


def measure(args, data, threads, batch, hidden, rep):
    """Samples/s of one timed epoch over the whole training set, and test accuracy after it."""
    x_train, y_train, x_test, y_test = data
    inputs, classes = x_train.shape[1], int(y_train.max()) + 1
    torch.set_num_threads(threads)
    loss_fn = nn.CrossEntropyLoss()
    # The training file's own order (already class-mixed), as bench/throughput.c uses, so with
    # --init-dir both train on identical batches from identical weights; every batch is a
    # contiguous view, PyTorch's fastest case.
    xs, ys = x_train.contiguous(), y_train.contiguous()

    if args.warmup_samples > 0:
        model = make_model(inputs, hidden, classes, args.seed, args.bprop_init, args.init_dir)
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
        n = min(len(xs), args.warmup_samples)
        run_epoch(model, opt, loss_fn, xs[:n], ys[:n], batch)

    # A fresh model, so the accuracy reflects exactly one epoch.
    model = make_model(inputs, hidden, classes, args.seed, args.bprop_init, args.init_dir)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    start = time.perf_counter()
    run_epoch(model, opt, loss_fn, xs, ys, batch)
    seconds = time.perf_counter() - start

    with torch.no_grad():
        predicted = model(x_test).argmax(dim=1)
        acc = (predicted == y_test).double().mean().item()
    return len(xs) / seconds, acc


def fmt(value, spec):
    return "" if value is None else format(value, spec)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz")
    p.add_argument("--threads", type=int_list, default=None,
                   help="thread counts (default 1,2,4,...,cpu count)")
    p.add_argument("--batch", type=int_list, default=[32, 128, 512])
    p.add_argument("--hidden", type=int_list, default=[256])
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--repeats", type=int, default=1, help="timed epochs per point; median")
    p.add_argument("--warmup-samples", type=int, default=8192,
                   help="samples of the untimed warm-up epoch on a fresh model (0: none)")
    p.add_argument("--train-samples", type=int, default=0,
                   help="use only the first N training samples (0: all)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--peak", type=peak_map, default={},
                   help="measured peak GFLOP/s per thread count, e.g. 1:229.2,2:451.4")
    p.add_argument("--torch-init", dest="bprop_init", action="store_false",
                   help="keep PyTorch's default initialisation instead of bprop's")
    p.add_argument("--init-dir", default=None,
                   help="start from bprop's initial models DIR/init_hH.bpm (throughput --init-dir)")
    p.add_argument("--standardize", action="store_true",
                   help="standardise the features as bench/throughput --standardize does: with "
                        "the statistics in --init-dir's models, else with the training set's")
    p.add_argument("--kernel-set", default="",
                   help="bprop's kernel set, recorded in the kernel_set column")
    p.add_argument("--describe", action="store_true",
                   help="print one line on PyTorch, its BLAS and the CPU, and exit")
    p.add_argument("--out", default="-", help="CSV file (default: stdout)")
    p.add_argument("--no-header", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args()
    if args.repeats < 1:
        p.error("--repeats must be at least 1")

    if args.describe:
        model, isa = cpu_description()
        blas = peer_blas()
        print(f"torch {torch.__version__}, {blas.get('internal_api', 'BLAS unknown')} "
              f"{blas.get('version', '')} ({blas.get('architecture', '?')} kernels, "
              f"{blas.get('filepath', '?')}); CPU {model} ({isa})")
        return
    for name in PINNING_VARIABLES:
        if name in os.environ and not args.quiet:
            print(f"torch_throughput: warning: {name}={os.environ[name]} is set: OpenBLAS may not "
                  f"run this CPU's own kernels (see the peer_arch column)", file=sys.stderr)
    env_fields = environment_fields(args.kernel_set)

    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "t10k")
    if args.train_samples > 0:
        x_train, y_train = x_train[:args.train_samples], y_train[:args.train_samples]
    if args.standardize:
        stats = None
        if args.init_dir:
            stats = load_bprop_model(os.path.join(args.init_dir, f"init_h{args.hidden[0]}.bpm"))[4]
        if stats is None:
            stats = feature_stats(x_train)
        x_train, x_test = standardize(x_train, stats), standardize(x_test, stats)
    data = (x_train, y_train, x_test, y_test)
    threads_list = sorted(set(args.threads or default_threads()))

    out = sys.stdout if args.out == "-" else open(args.out, "w")
    if not args.no_header:
        print(COLUMNS, file=out, flush=True)
    for hidden in args.hidden:
        # 2(DH + HC) forward, 2(DH + 2HC) backward: 3196 H for Fashion-MNIST.
        inputs, classes = x_train.shape[1], int(y_train.max()) + 1
        flops_per_sample = float(hidden * (4 * inputs + 6 * classes))
        for batch in args.batch:
            base = None  # samples/s at one thread
            for threads in threads_list:
                runs = sorted((measure(args, data, threads, batch, hidden, r)
                               for r in range(args.repeats)), key=lambda run: run[0])
                sps, acc = runs[len(runs) // 2]
                if threads == 1:
                    base = sps
                gflops = sps * flops_per_sample / 1e9
                peak = args.peak.get(threads)
                speedup = sps / base if base else None
                print(",".join([
                    "pytorch", str(threads), str(batch), str(hidden), f"{sps:.1f}",
                    f"{gflops:.2f}", fmt(peak, ".1f"),
                    fmt(gflops / peak if peak else None, ".4f"), fmt(speedup, ".3f"),
                    fmt(speedup / threads if speedup else None, ".3f"), "", f"{acc:.4f}",
                    "", str(int(args.standardize)), "1.0000", f"{gflops:.2f}",
                    fmt(gflops / peak if peak else None, ".4f"), *env_fields,
                ]), file=out, flush=True)
                if not args.quiet:
                    print(f"pytorch threads={threads} batch={batch} hidden={hidden}: "
                          f"{sps:.0f} samples/s, {gflops:.1f} GFLOP/s, test acc {acc:.4f}",
                          file=sys.stderr, flush=True)
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
