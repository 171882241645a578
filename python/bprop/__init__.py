"""bprop: two-layer ReLU/softmax networks trained by libbprop, as a scikit-learn classifier.

    >>> import bprop
    >>> X, y = bprop.load_idx("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    >>> clf = bprop.MLPClassifier(epochs=5, random_state=42).fit(X, y)
    >>> clf.save("fashion.bpm")          # readable by `bprop eval` and `bprop info`
"""
from . import _core
from ._classifier import MLPClassifier, load

__all__ = ["MLPClassifier", "load", "load_idx", "isa", "__version__"]
__version__ = _core.version


def load_idx(images, labels):
    """Read IDX images and labels (plain or gzip) exactly as `bprop train --train IMAGES
    --train-labels LABELS` reads them: X float32 (n, pixels) scaled to [0, 1], y int32."""
    return _core.load_idx(images, labels)


def isa():
    """The kernel set libbprop uses here: "generic", "avx2" or "avx512" (BPROP_ISA picks)."""
    return _core.isa()
