"""fit ends with the parameters `bprop train` ends with, bit for bit, given the same data, seed
and settings: at 1 and 2 threads, and with reproducible=True across thread counts."""
import numpy as np
import pytest

import bprop
from conftest import run_cli, same_bits

# (estimator parameters, the same as `bprop train` flags)
CONFIGS = {
    "defaults": ({}, []),
    "step-decay-clip": (dict(schedule="step", step_epochs=1, step_gamma=0.5, weight_decay=1e-4,
                             clip=1.0, momentum=0.5, nesterov=False, batch_size=100),
                        ["--schedule", "step", "--step-epochs", "1", "--step-gamma", "0.5",
                         "--weight-decay", "1e-4", "--clip", "1.0", "--momentum", "0.5",
                         "--no-nesterov", "--batch", "100"]),
    "standardize-val": (dict(standardize=True, validation_fraction=0.1, hidden=40, lr=0.05),
                        ["--standardize", "--val-fraction", "0.1", "--hidden", "40", "--lr", "0.05"]),
    "no-shuffle-hidden": (dict(shuffle=False, parallel="hidden", hidden=64),
                          ["--no-shuffle", "--parallel", "hidden", "--hidden", "64"]),
}


def cli_params(cli, idx_files, tmp_path, flags, threads, seed, epochs, tag):
    images, labels = idx_files
    model = tmp_path / f"cli-{tag}-{threads}.bpm"
    run_cli(cli, "train", "--train", images, "--train-labels", labels, "--epochs", epochs,
            "--seed", seed, "--threads", threads, "--quiet", "--save", model, *flags)
    return bprop.load(model)._net.params()


def fit_params(idx_files, params, threads, seed, epochs):
    X, y = bprop.load_idx(*idx_files)
    clf = bprop.MLPClassifier(epochs=epochs, random_state=seed, n_jobs=threads, **params).fit(X, y)
    return clf._net.params()


def test_load_idx_reads_as_the_cli():
    """X float32 C order in [0, 1] with every pixel v exactly v / 255, y int32."""
    import tempfile, os, struct
    with tempfile.TemporaryDirectory() as d:
        img, lab = os.path.join(d, "i"), os.path.join(d, "l")
        with open(img, "wb") as f:
            f.write(struct.pack(">IIII", 0x0803, 2, 8, 16) + bytes(range(256)))
        with open(lab, "wb") as f:
            f.write(struct.pack(">II", 0x0801, 2) + bytes([3, 7]))
        X, y = bprop.load_idx(img, lab)
    assert X.dtype == np.float32 and X.flags.c_contiguous and X.shape == (2, 128)
    assert X.__array_interface__["data"][0] % 64 == 0  # as the library aligns its own
    assert y.dtype == np.int32 and list(y) == [3, 7]
    assert same_bits(X.ravel(), np.arange(256, dtype=np.float32) / np.float32(255))


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("threads", [1, 2])
def test_same_bits_as_cli(cli, idx_files, tmp_path, config, threads):
    params, flags = CONFIGS[config]
    ours = fit_params(idx_files, params, threads, seed=7, epochs=2)
    theirs = cli_params(cli, idx_files, tmp_path, flags, threads, 7, 2, config)
    assert same_bits(ours, theirs)


def test_reproducible_across_threads(cli, idx_files, tmp_path):
    flags = ["--reproducible"]
    runs = [fit_params(idx_files, dict(reproducible=True), t, seed=11, epochs=1) for t in (1, 2)]
    cli1 = cli_params(cli, idx_files, tmp_path, flags, 1, 11, 1, "repro")
    cli2 = cli_params(cli, idx_files, tmp_path, flags, 2, 11, 1, "repro")
    assert same_bits(runs[0], runs[1])
    assert same_bits(runs[0], cli1) and same_bits(runs[0], cli2)


def test_different_seed_differs(idx_files):
    """The comparison can fail: another seed gives other bits."""
    assert not same_bits(fit_params(idx_files, {}, 1, seed=7, epochs=1),
                         fit_params(idx_files, {}, 1, seed=8, epochs=1))
