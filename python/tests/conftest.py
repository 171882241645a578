"""Shared fixtures: the CLI programs and a small IDX data set both the CLI and bprop read."""
import gzip
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest

FASHION = "/usr/share/datasets/fashion-mnist"
N_TRAIN = 2000


def _program(env, name):
    path = os.environ.get(env) or shutil.which(name)
    if not path:
        pytest.skip(f"{name} not found (set {env}; ctest does)")
    return path


@pytest.fixture(scope="session")
def cli():
    return _program("BPROP_CLI", "bprop")


def run_cli(cli, *args, check=True):
    """Run the CLI; returns its CompletedProcess (stdout and stderr as text)."""
    r = subprocess.run([cli, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{cli} {' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr}")
    return r


def _write_idx(path, magic, dims, payload):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload)


@pytest.fixture(scope="session")
def idx_files(tmp_path_factory):
    """(images, labels): the first N_TRAIN Fashion-MNIST training samples as plain IDX files, or
    a synthetic set of the same shape (digits drawn as class-dependent stripes with noise) where
    the data package is absent."""
    d = tmp_path_factory.mktemp("idx")
    src_img = os.path.join(FASHION, "train-images-idx3-ubyte.gz")
    src_lab = os.path.join(FASHION, "train-labels-idx1-ubyte.gz")
    if os.path.exists(src_img) and os.path.exists(src_lab):
        with gzip.open(src_img) as f:
            pixels = f.read(16 + N_TRAIN * 784)[16:]
        with gzip.open(src_lab) as f:
            labels = f.read(8 + N_TRAIN)[8:]
    else:
        rng = np.random.RandomState(0)
        lab = rng.randint(0, 10, N_TRAIN).astype(np.uint8)
        img = rng.randint(0, 80, (N_TRAIN, 28, 28)).astype(np.uint8)
        for c in range(10):
            img[lab == c, :, 2 * c:2 * c + 3] = 230
        pixels, labels = img.tobytes(), lab.tobytes()
    images, labs = d / "images.idx", d / "labels.idx"
    _write_idx(images, 0x0803, (N_TRAIN, 28, 28), pixels)
    _write_idx(labs, 0x0801, (N_TRAIN,), labels)
    return str(images), str(labs)


def same_bits(a, b):
    """Bitwise equality of two float32 arrays (NaNs and signed zeros included)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))
