"""The GIL is released while training; Ctrl-C stops fit at a step boundary and leaves the
estimator at the last finished epoch; verbose prints one line per epoch."""
import _thread
import os
import signal
import socket
import sys
import threading

import numpy as np
import pytest

import bprop
from conftest import same_bits


def data(n=1000, d=50, seed=0):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 4, n)
    X = (rng.rand(n, d) + y[:, None] * 0.3).astype(np.float32)
    return X, y


def _net_for(X, classes=4, schedule="constant", hidden=32):
    net = bprop._core.Net(X.shape[1], hidden, classes, True, 5)
    net.start_training(n_train=len(X), epochs=1, batch=50, lr=0.1, momentum=0.9, nesterov=True,
                       weight_decay=0.0, schedule=schedule, step_epochs=3, step_gamma=0.1,
                       clip=0.0, seed=5, shuffle=True, threads=1, parallel="auto", reproducible=False)
    return net


class _Gate:
    """The test hook gate_fd of Net.epoch: one end of a socket pair. At its first step the trainer
    sends a byte on it (it is inside the epoch) and waits up to 60 s for one back; another thread
    here waits for the first, does its part, then sends the second. That thread can only get
    past the wait, which needs the GIL, if the trainer has released it."""

    def __init__(self, action=lambda: None):
        self.trainer_end, self.ours = socket.socketpair()
        self.thread = threading.Thread(target=self._run, args=(action,))

    def _run(self, action):
        if self.ours.recv(1) == b"r":
            action()
        self.ours.send(b"x")

    def __enter__(self):
        self.thread.start()
        return self.trainer_end.fileno()

    def __exit__(self, *exc):
        self.thread.join()
        self.trainer_end.close()
        self.ours.close()
        return False


def test_gil_released_during_training():
    X, y = data()
    yi = y.astype(np.int32)
    net = _net_for(X)
    ran = []
    with _Gate(lambda: ran.append(sum(range(1000)))) as gate:  # Python code: needs the GIL
        rec = net.epoch(X, yi, gate_fd=gate)
    assert rec["gate_opened"] and ran == [499500]


def _interrupt(how):
    if how == "kill":
        os.kill(os.getpid(), signal.SIGINT)
    else:
        _thread.interrupt_main()


class _EpochWatch:
    """A stdout for verbose=True that tells when the first epoch's line has been printed."""

    def __init__(self):
        self.first_epoch = threading.Event()
        self.lines = []

    def write(self, s):
        self.lines.append(s)
        if s.lstrip().startswith("1 "):
            self.first_epoch.set()
        return len(s)

    def flush(self):
        pass


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals reach the main thread only")
@pytest.mark.parametrize("how", ["kill", "interrupt_main"])
def test_ctrl_c_stops_fit_at_an_epoch_boundary(how, monkeypatch):
    X, y = data()
    params = dict(epochs=300, hidden=64, schedule="constant", random_state=3, n_jobs=1)
    watch = _EpochWatch()
    monkeypatch.setattr(sys, "stdout", watch)
    sender = threading.Thread(target=lambda: (watch.first_epoch.wait(), _interrupt(how)))
    sender.start()
    clf = bprop.MLPClassifier(verbose=True, **params)
    try:
        with pytest.raises(KeyboardInterrupt):
            clf.fit(X, y)
    finally:
        sender.join()
        monkeypatch.undo()
    done = clf.n_iter_
    assert 1 <= done < 300
    assert len(clf.loss_curve_) == done and clf._net.info["epochs_done"] == done
    # Exactly the network of an uninterrupted run of that many epochs (constant schedule).
    ref = bprop.MLPClassifier(**dict(params, epochs=done)).fit(X, y)
    assert same_bits(clf._net.params(), ref._net.params())
    assert same_bits(clf.coefs_[0], ref.coefs_[0]) and clf.loss_curve_ == ref.loss_curve_
    assert clf.predict(X).shape == (len(X),)
    assert signal.set_wakeup_fd(-1) == -1  # the watch pipe is gone


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals reach the main thread only")
def test_interrupt_stops_the_epoch_between_steps():
    """The trainer is held at its first step (of 20) until a KeyboardInterrupt has been sent:
    the epoch must stop there, not at its end, and be undone (no epoch recorded, parameters as
    before it)."""
    X, y = data()
    yi = y.astype(np.int32)
    net = _net_for(X)
    before = net.params()
    with pytest.raises(KeyboardInterrupt):
        with _Gate(_thread.interrupt_main) as gate:  # its wakeup byte is written before it returns
            net.epoch(X, yi, signals=True, gate_fd=gate)
    assert net.history == [] and net.info["epochs_done"] == 0
    assert same_bits(net.params(), before)
    assert signal.set_wakeup_fd(-1) == -1
    # The trainer stands at the epoch's start: the epoch now runs as if never begun.
    rec = net.epoch(X, y.astype(np.int32))
    ref = _net_for(X)
    ref.epoch(X, y.astype(np.int32))
    assert rec["epoch"] == 1 and same_bits(net.params(), ref.params())


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals reach the main thread only")
def test_a_handler_that_returns_lets_the_epoch_go_on():
    """A signal whose Python handler returns stops the epoch at a step, runs the handler, and
    the epoch continues where it stopped: the same bits as without the signal."""
    X, y = data()
    yi = y.astype(np.int32)
    handled = []
    old = signal.signal(signal.SIGUSR1, lambda signo, frame: handled.append(signo))
    net = _net_for(X, schedule="cosine")
    try:
        with _Gate(lambda: signal.raise_signal(signal.SIGUSR1)) as gate:
            rec = net.epoch(X, yi, signals=True, gate_fd=gate)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert handled == [signal.SIGUSR1] and rec["gate_opened"] and rec["signal_stops"] == 1
    ref = _net_for(X, schedule="cosine")
    ref_rec = ref.epoch(X, y.astype(np.int32))
    assert same_bits(net.params(), ref.params()) and rec["train_loss"] == ref_rec["train_loss"]


def test_verbose_prints_one_line_per_epoch(capsys):
    X, y = data(n=300)
    bprop.MLPClassifier(epochs=3, hidden=16, random_state=0, verbose=True).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "samples/s",
                                "seconds", "lr", "|g_W1|", "|g_b1|", "|g_W2|", "|g_b2|"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3"]
    assert all(len(line.split()) == 12 for line in lines)
    bprop.MLPClassifier(epochs=3, hidden=16, random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""


def test_a_network_in_training_refuses_other_calls():
    """While one thread trains (held at its first step by the gate), another thread's call on the
    same network is refused rather than racing it; afterwards the network is usable again."""
    X, y = data(n=300)
    yi = y.astype(np.int32)
    net = _net_for(X, hidden=16)
    refused = []

    def predict():
        try:
            net.predict_proba(X)
        except RuntimeError as e:
            refused.append(str(e))

    with _Gate(predict) as gate:
        rec = net.epoch(X, yi, gate_fd=gate)
    assert rec["gate_opened"] and refused and "in use by another thread" in refused[0]
    assert net.predict_proba(X).shape == (len(X), 4)
