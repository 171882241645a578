"""Pickle, clone, .bpm files both ways (bprop eval/info read ours, bprop.load reads the CLI's and
bprop-mpi's), and partial_fit."""
import json
import os
import pickle
import subprocess

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import bprop
from conftest import run_cli, same_bits


def data(n=400, d=30, seed=0):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 3, n)
    X = (rng.rand(n, d) + y[:, None] * 0.4).astype(np.float32)
    return X, y


def test_pickle_predicts_the_same_bits():
    X, y = data()
    clf = bprop.MLPClassifier(epochs=3, hidden=24, standardize=True, random_state=0).fit(X, np.array(["a", "b", "c"])[y])
    back = pickle.loads(pickle.dumps(clf))
    assert same_bits(back.predict_proba(X), clf.predict_proba(X))
    assert list(back.classes_) == ["a", "b", "c"] and back.n_iter_ == 3
    assert back.get_params() == clf.get_params()
    assert same_bits(back.coefs_[1], clf.coefs_[1])


def test_clone_is_unfitted_with_the_same_parameters():
    clf = bprop.MLPClassifier(hidden=12, lr=0.05, schedule="step", random_state=4).fit(*data())
    c = clone(clf)
    assert c.get_params() == clf.get_params()
    with pytest.raises(NotFittedError):
        c.predict(data()[0])


def test_fitted_attributes():
    X, y = data()
    clf = bprop.MLPClassifier(epochs=4, hidden=24, validation_fraction=0.2, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(30, 24), (24, 3)]
    assert [b.shape for b in clf.intercepts_] == [(24,), (3,)]
    assert clf.n_iter_ == 4 and len(clf.loss_curve_) == 4 and len(clf.validation_scores_) == 4
    assert clf.n_features_in_ == 30 and all(0 <= s <= 1 for s in clf.validation_scores_)
    # predict_proba from coefs_/intercepts_ in NumPy agrees (to rounding) with libbprop.
    h = np.maximum(X @ clf.coefs_[0] + clf.intercepts_[0], 0)
    z = h @ clf.coefs_[1] + clf.intercepts_[1]
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(clf.predict_proba(X), p / p.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X), rtol=1e-5)


def test_save_is_read_by_the_cli(cli, idx_files, tmp_path):
    X, y = bprop.load_idx(*idx_files)
    clf = bprop.MLPClassifier(epochs=1, hidden=32, random_state=5, n_jobs=1).fit(X, y)
    path = tmp_path / "py.bpm"
    clf.save(path)
    info = json.loads(run_cli(cli, "info", path, "--json").stdout)
    assert json.dumps(info).count("32") >= 1
    ev = json.loads(run_cli(cli, "eval", path, "--test", idx_files[0], "--test-labels",
                            idx_files[1], "--json", "--threads", "1").stdout)
    assert abs(ev["accuracy"] - clf.score(X, y)) < 1e-9
    back = bprop.load(path)
    assert same_bits(back._net.params(), clf._net.params())
    assert same_bits(back.predict_proba(X), clf.predict_proba(X))


def test_load_reads_a_cli_model(cli, idx_files, tmp_path):
    path = tmp_path / "cli.bpm"
    run_cli(cli, "train", "--train", idx_files[0], "--train-labels", idx_files[1], "--epochs", 2,
            "--hidden", 20, "--lr", 0.05, "--standardize", "--quiet", "--save", path)
    clf = bprop.load(path)
    assert clf.hidden == 20 and clf.lr == 0.05 and clf.standardize and clf.epochs == 2
    assert clf.n_iter_ == 2 and list(clf.classes_) == list(range(10))
    X, y = bprop.load_idx(*idx_files)
    ev = json.loads(run_cli(cli, "eval", path, "--test", idx_files[0], "--test-labels",
                            idx_files[1], "--json").stdout)
    assert abs(ev["accuracy"] - clf.score(X, y)) < 1e-9


def test_load_reads_a_bprop_mpi_model(idx_files, tmp_path):
    mpi_cli, mpiexec = os.environ.get("BPROP_MPI_CLI"), os.environ.get("BPROP_MPIEXEC")
    if not mpi_cli or not mpiexec:
        pytest.skip("bprop-mpi not built (BPROP_MPI_CLI, BPROP_MPIEXEC)")
    path = tmp_path / "mpi.bpm"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1")
    subprocess.run([mpiexec, "--oversubscribe", "-np", "2", mpi_cli, "train", "--train", idx_files[0],
                    "--train-labels", idx_files[1], "--epochs", "1", "--hidden", "16",
                    "--reproducible", "--seed", "9", "--quiet", "--save", str(path)],
                   check=True, env=env, capture_output=True)
    clf = bprop.load(path)
    assert clf._net.info["ranks"] == 2 and clf.reproducible
    X, y = bprop.load_idx(*idx_files)
    # reproducible: the same bits as one process.
    ref = bprop.MLPClassifier(epochs=1, hidden=16, reproducible=True, random_state=9).fit(X, y)
    assert same_bits(clf._net.params(), ref._net.params())


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_partial_fit_is_fit_one_epoch_at_a_time(schedule):
    X, y = data()
    params = dict(epochs=3, hidden=24, schedule=schedule, step_epochs=1, random_state=2, n_jobs=1)
    inc = bprop.MLPClassifier(**params)
    for _ in range(3):
        inc.partial_fit(X, y, classes=np.unique(y))
    ref = bprop.MLPClassifier(**params).fit(X, y)
    assert inc.n_iter_ == 3 and inc.loss_curve_ == ref.loss_curve_
    assert same_bits(inc._net.params(), ref._net.params())


def test_partial_fit_keeps_momentum_across_batch_sizes():
    """A second call on a batch of another size keeps the momentum: it differs from the same
    call on a copy that lost its trainer (a pickled estimator starts a new one)."""
    X, y = data()
    params = dict(hidden=16, schedule="constant", random_state=1, shuffle=False, n_jobs=1)
    a = bprop.MLPClassifier(**params).partial_fit(X[:200], y[:200], classes=[0, 1, 2])
    fresh = pickle.loads(pickle.dumps(a))
    assert same_bits(fresh._net.params(), a._net.params())
    a.partial_fit(X[200:], y[200:])
    fresh.partial_fit(X[200:], y[200:])
    assert a.n_iter_ == 2 and fresh.n_iter_ == 2
    assert not same_bits(a._net.params(), fresh._net.params())
    with pytest.raises(ValueError, match="not in classes_"):
        a.partial_fit(X[:10], np.full(10, 7))
    with pytest.raises(ValueError, match="features"):
        a.partial_fit(X[:, :5], y)


def test_warm_start_continues():
    X, y = data()
    clf = bprop.MLPClassifier(epochs=2, hidden=16, warm_start=True, random_state=0).fit(X, y)
    first = clf._net.params()
    clf.fit(X, y)
    assert clf.n_iter_ == 4 and len(clf.loss_curve_) == 4
    assert not same_bits(first, clf._net.params())
    with pytest.raises(ValueError, match="features"):
        clf.fit(X[:, :5], y)
    assert clf.n_features_in_ == 30 and clf.n_iter_ == 4
