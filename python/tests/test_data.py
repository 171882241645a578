"""Input handling: no copy of C-contiguous float32 X (read-only and memory-mapped included),
one conversion otherwise, any float alignment, labels of any kind, DataFrames, bad input."""
import numpy as np
import pytest
import scipy.sparse

import bprop
from conftest import same_bits


def small_data(n=300, d=20, seed=0):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 3, n)
    X = (rng.rand(n, d) + y[:, None] * 0.5).astype(np.float32)
    return X, y


def fit(X, y, **kw):
    return bprop.MLPClassifier(epochs=2, hidden=32, random_state=0, n_jobs=1, **kw).fit(X, y)


def address(a):
    return a.__array_interface__["data"][0]


def test_c_float32_is_not_copied():
    X, y = small_data()
    clf = fit(X, y)
    assert clf._last_data_address == address(X)


def test_read_only_memmap_is_not_copied(tmp_path):
    X, y = small_data()
    np.save(tmp_path / "x.npy", X)
    Xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert not Xm.flags.writeable
    clf = fit(Xm, y)
    assert clf._last_data_address == address(Xm)
    assert same_bits(clf._net.params(), fit(X, y)._net.params())


@pytest.mark.parametrize("convert", [lambda X: X.astype(np.float64), np.asfortranarray,
                                     lambda X: np.repeat(X, 2, axis=1)[:, ::2]])
def test_other_layouts_are_converted_once(convert):
    X, y = small_data()
    Xo = convert(X)
    clf = fit(Xo, y)
    assert clf._last_data_address != address(Xo)
    assert same_bits(clf._net.params(), fit(X, y)._net.params())


def test_unaligned_rows_are_used_in_place():
    """The kernels read rows with unaligned loads: X 4 bytes past a 64-byte boundary is used
    where it is, and trains to the same bits as an aligned copy."""
    X, y = small_data(d=19)
    buf = np.zeros(X.size + 64, np.float32)
    skip = ((64 - address(buf) % 64) % 64 + 4) // 4
    Xu = buf[skip:skip + X.size].reshape(X.shape)
    Xu[...] = X
    assert address(Xu) % 64 == 4
    clf = fit(Xu, y)
    assert clf._last_data_address == address(Xu)
    assert same_bits(clf._net.params(), fit(np.array(X), y)._net.params())


@pytest.mark.parametrize("labels", [["cat", "dog", "eel"], [-5, 3, 100], [7, -2, 40]])
def test_any_labels(labels):
    X, y = small_data()
    ylab = np.array(labels, dtype=object if isinstance(labels[0], str) else None)[y]
    clf = fit(X, ylab)
    assert list(clf.classes_) == sorted(labels)
    assert set(clf.predict(X)) <= set(labels)
    # The same network as with labels 0..2 in the same order.
    order = np.argsort(labels)
    remap = np.empty(3, int)
    remap[order] = np.arange(3)
    plain = fit(X, remap[y])
    assert same_bits(clf._net.params(), plain._net.params())
    assert (clf.predict(X) == np.array(sorted(labels), dtype=ylab.dtype)[plain.predict(X)]).all()


def test_dataframe_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = small_data(d=4)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = fit(df, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c", "d"]
    assert (clf.predict(df) == fit(X, y).predict(X)).all()
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df.rename(columns={"a": "z"}))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_refused(bad):
    X, y = small_data()
    X[5, 3] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        fit(X, y)
    clf = fit(*small_data())
    with pytest.raises(ValueError, match="NaN|infinity"):
        clf.predict(X)


def test_shapes_refused():
    X, y = small_data()
    with pytest.raises(ValueError, match="2D array"):
        fit(X[:, 0], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fit(X, y[:-1])
    clf = fit(X, y)
    with pytest.raises(ValueError, match="19 features, but MLPClassifier is expecting 20"):
        clf.predict(X[:, :19])
    with pytest.raises(ValueError, match="2D array"):
        clf.predict(X[0])


def test_sparse_refused():
    X, y = small_data()
    with pytest.raises(TypeError, match="sparse"):
        fit(scipy.sparse.csr_matrix(X), y)
    clf = fit(X, y)
    with pytest.raises(TypeError, match="sparse"):
        clf.predict(scipy.sparse.csr_matrix(X))


def test_bad_parameters_refused_at_fit():
    X, y = small_data()
    for kw in (dict(lr=0.0), dict(momentum=1.0), dict(schedule="linear"), dict(parallel="x"),
               dict(hidden=0), dict(batch_size=1.5), dict(n_jobs=0), dict(validation_fraction=1.0),
               dict(step_gamma=0.0), dict(random_state=-1)):
        clf = bprop.MLPClassifier(**kw)  # stored as given
        assert all(clf.get_params()[k] == v for k, v in kw.items())
        with pytest.raises(ValueError):
            clf.fit(X, y)
