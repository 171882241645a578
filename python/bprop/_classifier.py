"""bprop.MLPClassifier: the scikit-learn estimator over libbprop (bprop._core)."""
import numbers
import os
import tempfile

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import _core

_SCHEDULES = ("constant", "step", "cosine")
_PARALLEL = ("auto", "data", "hidden")
_SEED_LIMIT = 2**64


def _threads(n_jobs):
    """n_jobs as libbprop's thread count: None or -1 all cores (0: OMP_NUM_THREADS or all),
    -2 all but one, and so on."""
    if n_jobs is None or n_jobs == -1:
        return 0
    if n_jobs > 0:
        return int(n_jobs)
    return max(1, (os.cpu_count() or 1) + 1 + int(n_jobs))


def _check_number(name, value, kind, low=None, high=None, low_open=False, high_open=False):
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else ("(" if low_open else "[") + str(low)
        hi = "" if high is None else str(high) + (")" if high_open else "]")
        rng = f" in {lo or '(-inf'}, {hi or 'inf)'}" if (lo or hi) else ""
        raise ValueError(f"The '{name}' parameter of MLPClassifier must be a number{rng}. Got {value!r} instead.")


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A 784-H-10 style network: one ReLU hidden layer, softmax output, cross-entropy, trained
    with minibatch SGD (Nesterov momentum) by libbprop on OpenMP threads. The parameters and
    their defaults are `bprop train`'s (docs/python.md maps each to its flag).

    Fitted attributes: classes_, n_features_in_, feature_names_in_ (DataFrames), n_iter_,
    loss_curve_, validation_scores_ (with validation_fraction > 0), coefs_ ([W1 (features,
    hidden), W2 (hidden, classes)]) and intercepts_ ([b1, b2]), all float32.
    """

    def __init__(self, hidden=256, epochs=10, batch_size=128, lr=0.1, momentum=0.9, nesterov=True,
                 weight_decay=0.0, schedule="cosine", step_epochs=3, step_gamma=0.1, clip=0.0,
                 standardize=False, validation_fraction=0.0, shuffle=True, n_jobs=None,
                 parallel="auto", reproducible=False, random_state=None, warm_start=False,
                 verbose=False):
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.step_epochs = step_epochs
        self.step_gamma = step_gamma
        self.clip = clip
        self.standardize = standardize
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.n_jobs = n_jobs
        self.parallel = parallel
        self.reproducible = reproducible
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    # ---- parameters ------------------------------------------------------------------------

    def _check_params(self):
        for name in ("hidden", "epochs", "batch_size", "step_epochs"):
            _check_number(name, getattr(self, name), numbers.Integral, low=1)
        _check_number("lr", self.lr, numbers.Real, low=0.0, low_open=True)
        _check_number("momentum", self.momentum, numbers.Real, low=0.0, high=1.0, high_open=True)
        _check_number("weight_decay", self.weight_decay, numbers.Real, low=0.0)
        _check_number("step_gamma", self.step_gamma, numbers.Real, low=0.0, high=1.0, low_open=True)
        _check_number("clip", self.clip, numbers.Real, low=0.0)
        _check_number("validation_fraction", self.validation_fraction, numbers.Real, low=0.0,
                      high=1.0, high_open=True)
        if self.schedule not in _SCHEDULES:
            raise ValueError(f"The 'schedule' parameter of MLPClassifier must be one of {_SCHEDULES}. "
                             f"Got {self.schedule!r} instead.")
        if self.parallel not in _PARALLEL:
            raise ValueError(f"The 'parallel' parameter of MLPClassifier must be one of {_PARALLEL}. "
                             f"Got {self.parallel!r} instead.")
        if self.n_jobs is not None and (not isinstance(self.n_jobs, numbers.Integral) or self.n_jobs == 0):
            raise ValueError(f"The 'n_jobs' parameter of MLPClassifier must be None or a non-zero int. "
                             f"Got {self.n_jobs!r} instead.")

    def _seed(self):
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            if not 0 <= rs < _SEED_LIMIT:
                raise ValueError(f"random_state must be in [0, 2**64), got {rs}")
            return int(rs)
        return int(check_random_state(rs).randint(0, 2**63 - 1, dtype=np.int64))

    def _train_settings(self, n_train, seed):
        return dict(n_train=n_train, epochs=int(self.epochs), batch=int(self.batch_size),
                    lr=float(self.lr), momentum=float(self.momentum),
                    # Off without momentum, as `bprop train --momentum 0` turns it off.
                    nesterov=bool(self.nesterov) and self.momentum > 0,
                    weight_decay=float(self.weight_decay), schedule=self.schedule,
                    step_epochs=int(self.step_epochs), step_gamma=float(self.step_gamma),
                    clip=float(self.clip), seed=seed, shuffle=bool(self.shuffle),
                    threads=_threads(self.n_jobs), parallel=self.parallel,
                    reproducible=bool(self.reproducible))

    def _more_tags(self):
        return {"preserves_dtype": [np.float32]}

    # ---- data ------------------------------------------------------------------------------

    def _check_X_y(self, X, y, reset):
        # float32 C order: an array that already is one passes through without a copy.
        X, y = self._validate_data(X, y, reset=reset, dtype=np.float32, order="C",
                                   accept_sparse=False, force_all_finite=True)
        check_classification_targets(y)
        return X, y

    def _encode(self, y):
        """Labels as indices into classes_ (int32), refusing labels classes_ lacks."""
        idx = np.searchsorted(self.classes_, y)
        idx[idx >= len(self.classes_)] = 0
        if not np.array_equal(self.classes_[idx], y):
            unknown = np.setdiff1d(np.unique(y), self.classes_)
            raise ValueError(f"y contains labels not in classes_: {unknown[:10]}")
        return idx.astype(np.int32)

    # ---- training --------------------------------------------------------------------------

    def fit(self, X, y):
        """Train for `epochs` epochs (a new network unless warm_start and already fitted)."""
        self._check_params()
        warm = self.warm_start and hasattr(self, "_net")
        X, y = self._check_X_y(X, y, reset=not warm)  # warm: the fitted feature count holds
        if warm:
            yi = self._encode(y)
        else:
            self.classes_ = np.unique(y)
            yi = self._encode(y)
            self.loss_curve_, self.validation_scores_, self.n_iter_ = [], [], 0
        seed = self._seed()
        K = len(self.classes_)
        X_val = y_val = None
        if self.validation_fraction > 0:
            # The split `bprop train --val-fraction F --seed S` makes (copies).
            X, yi, X_val, y_val = _core.split(X, yi, K, float(self.validation_fraction), seed)
        if warm:
            net = self._net
        else:
            net = _core.Net(X.shape[1], int(self.hidden), K, True, seed)
            if self.standardize:
                net.fit_standardization(X)  # training split only, as bprop train does
        X = net.standardize(X)
        if X_val is not None:
            X_val = net.standardize(X_val)
        net.start_training(**self._train_settings(X.shape[0], seed))
        self._net, self._seed_used = net, seed
        self._run(net, X, yi, X_val, y_val, int(self.epochs))
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y). The first call (on an unfitted estimator) needs classes; the
        momentum, shuffling generator and schedule position carry over from call to call."""
        first = _check_partial_fit_first_call(self, classes)
        if first:
            self._check_params()
        X, y = self._check_X_y(X, y, reset=first)
        yi = self._encode(y)
        if first or not hasattr(self, "_net"):
            self.loss_curve_, self.validation_scores_, self.n_iter_ = [], [], 0
            seed = self._seed()
            net = _core.Net(X.shape[1], int(self.hidden), len(self.classes_), True, seed)
            if self.standardize:
                net.fit_standardization(X)
            self._net, self._seed_used = net, seed
        net = self._net
        X = net.standardize(X)
        if net.trainer_samples != X.shape[0]:
            seed = getattr(self, "_seed_used", 0)
            net.start_training(carry=True, **self._train_settings(X.shape[0], seed))
        self._run(net, X, yi, None, None, 1)
        return self

    def _run(self, net, X, yi, X_val, y_val, epochs):
        """Run the epochs; whatever happens (KeyboardInterrupt included), the fitted attributes
        then describe the network as it stands: the epochs finished so far."""
        curve, scores, done = list(self.loss_curve_), list(self.validation_scores_), self.n_iter_
        seen = len(net.history)
        threads = _threads(self.n_jobs)
        try:
            if self.verbose and not self.n_iter_:
                # The columns and formats of `bprop train`'s table.
                print(f"{'epoch':>5} {'train_loss':>10} {'train_acc':>9} {'val_loss':>10} "
                      f"{'val_acc':>9} {'samples/s':>11} {'seconds':>8} {'lr':>9} {'|g_W1|':>9} "
                      f"{'|g_b1|':>9} {'|g_W2|':>9} {'|g_b2|':>9}", flush=True)
            for _ in range(epochs):
                # signals: a signal (Ctrl-C) stops the epoch between two steps (docs/python.md).
                rec = net.epoch(X, yi, X_val, y_val, threads=threads, signals=True)
                self._last_data_address = rec["data_address"]
                if self.verbose:
                    self._print_epoch(done + len(net.history) - seen, rec)
        finally:
            new = net.history[seen:]
            self.loss_curve_ = curve + [r["train_loss"] for r in new]
            self.validation_scores_ = scores + [r["val_acc"] for r in new if r["val_acc"] is not None]
            self.n_iter_ = done + len(new)
            self._set_fitted(net)

    @staticmethod
    def _print_epoch(epoch, r):
        held = (f"{r['val_loss']:10.4f} {r['val_acc']:9.4f}" if r["val_loss"] is not None
                else f"{'-':>10} {'-':>9}")
        norms = " ".join(f"{g:9.3g}" for g in r["grad_norm"])
        print(f"{epoch:5d} {r['train_loss']:10.4f} {r['train_acc']:9.4f} {held} "
              f"{r['samples_per_s']:11.0f} {r['seconds']:8.3f} {r['lr']:9.3g} {norms}", flush=True)

    def _set_fitted(self, net):
        inputs, hidden, classes, bias = net.shape
        W1, b1, W2, b2 = net.tensors()
        self.coefs_ = [W1, W2]
        self.intercepts_ = [b1 if bias else np.zeros(hidden, np.float32),
                            b2 if bias else np.zeros(classes, np.float32)]
        if not hasattr(self, "n_features_in_"):
            self.n_features_in_ = inputs

    # ---- prediction ------------------------------------------------------------------------

    def predict_proba(self, X):
        """Class probabilities, float32 (n, len(classes_)), columns in classes_ order."""
        check_is_fitted(self)
        X = self._validate_data(X, reset=False, dtype=np.float32, order="C", accept_sparse=False)
        return self._net.predict_proba(X, threads=_threads(self.n_jobs))

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    # ---- files and pickling ----------------------------------------------------------------

    def save(self, path):
        """Write the network as a .bpm model file (`bprop eval`, `bprop info`, `bprop predict`
        read it). The file holds the network and its standardisation; classes_ is not stored
        (a loaded model has classes 0..K-1)."""
        check_is_fitted(self)
        self._net.save(os.fspath(path))

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ is __dict__ itself
        net = state.pop("_net", None)
        if net is not None:
            # The network travels as the bytes of its .bpm file (versioned, CRC-checked). The
            # trainer (momentum) does not: partial_fit after unpickling starts a new one.
            with tempfile.TemporaryDirectory() as d:
                p = os.path.join(d, "net.bpm")
                net.save(p)
                with open(p, "rb") as f:
                    state["_net_bpm"] = f.read()
        return state

    def __setstate__(self, state):
        data = state.pop("_net_bpm", None)
        super().__setstate__(state)
        if data is not None:
            with tempfile.TemporaryDirectory() as d:
                p = os.path.join(d, "net.bpm")
                with open(p, "wb") as f:
                    f.write(data)
                self._net = _core.load(p)


def load(path):
    """A fitted MLPClassifier from any .bpm model file (bprop train, bprop-mpi, save()).
    classes_ is 0..K-1; the parameters are those the file records as its last run's settings;
    n_iter_ is the epochs the model was trained over its life; loss_curve_ holds the last
    epoch's training loss only (the file keeps no per-epoch history)."""
    net = _core.load(os.fspath(path))
    info = dict(net.info)
    for k in ("lr", "momentum", "weight_decay", "step_gamma", "clip"):
        info[k] = float(str(np.float32(info[k])))  # the float32 the file holds, as written
    inputs, hidden, classes, bias = net.shape
    clf = MLPClassifier(hidden=hidden, epochs=max(1, info["epochs"]), batch_size=max(1, info["batch"]),
                        lr=info["lr"], momentum=info["momentum"], nesterov=bool(info["nesterov"]),
                        weight_decay=info["weight_decay"], schedule=info["schedule"],
                        step_epochs=max(1, info["step_epochs"]), step_gamma=info["step_gamma"],
                        clip=info["clip"], standardize=net.standardization() is not None,
                        shuffle=bool(info["shuffle"]), parallel=info["parallel"],
                        reproducible=bool(info["reproducible"]), random_state=info["seed"])
    clf.classes_ = np.arange(classes)
    clf.n_features_in_ = inputs
    clf.n_iter_ = int(info["epochs_done"])
    clf.loss_curve_ = [info["train_loss"]] if info["epochs_done"] else []
    clf.validation_scores_ = []
    clf._net = net
    clf._set_fitted(net)
    return clf
