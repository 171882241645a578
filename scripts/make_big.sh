#!/usr/bin/env bash
# make_big.sh: write an N-image IDX training set (uncompressed) built deterministically from
# Fashion-MNIST's 60,000 training images, for training on more data than memory holds as floats.
#
# usage: scripts/make_big.sh N OUT_DIR [FASHION_DIR]
#   Writes OUT_DIR/train-images-idx3-ubyte (16 + N * 784 bytes) and OUT_DIR/train-labels-idx1-ubyte
#   (8 + N bytes), each to a temporary name first and renamed when complete. No download.
#   FASHION_DIR: where train-{images-idx3,labels-idx1}-ubyte[.gz] are
#   [/usr/share/datasets/fashion-mnist].
# Image i is source image i mod 60000 under variant k = i div 60000: variant 0 is the image as it
# is; the others shift it by (dx, dy) pixels, |dx|, |dy| <= 4, zero-filled, in the order of
# increasing dx^2 + dy^2 (then dy, then dx), each shift first as it is and then mirrored left to
# right (162 variants, up to 9,720,000 images). The label is the source's. Needs numpy
# (/usr/bin/python3 on Debian).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '4,8p' "$0" >&2; exit 2; }
n=$1 out=$2 src=${3:-/usr/share/datasets/fashion-mnist}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "make_big.sh: N must be a positive integer, got '$n'" >&2; exit 2; }
mkdir -p "$out"
exec /usr/bin/python3 - "$n" "$out" "$src" <<'PY'
import gzip, os, struct, sys
import numpy as np

n, out, src = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def read(name, offset):
    for path, opener in ((os.path.join(src, name), open), (os.path.join(src, name + ".gz"), gzip.open)):
        if os.path.exists(path):
            with opener(path, "rb") as f:
                return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)
    sys.exit("make_big.sh: %s not found in %s" % (name, src))

images = read("train-images-idx3-ubyte", 16).reshape(-1, 28, 28)
labels = read("train-labels-idx1-ubyte", 8)
m = len(labels)
shifts = sorted(((dx, dy) for dx in range(-4, 5) for dy in range(-4, 5)),
                key=lambda s: (s[0] ** 2 + s[1] ** 2, s[1], s[0]))
variants = [(dx, dy, flip) for dx, dy in shifts for flip in (0, 1)]
if n > m * len(variants):
    sys.exit("make_big.sh: at most %d images (%d variants of %d)" % (m * len(variants), len(variants), m))

def variant(k):
    dx, dy, flip = variants[k]
    v = np.zeros_like(images)
    ys, yd = (slice(0, 28 - dy), slice(dy, 28)) if dy >= 0 else (slice(-dy, 28), slice(0, 28 + dy))
    xs, xd = (slice(0, 28 - dx), slice(dx, 28)) if dx >= 0 else (slice(-dx, 28), slice(0, 28 + dx))
    v[:, yd, xd] = images[:, ys, xs]
    return v[:, :, ::-1] if flip else v

img_path = os.path.join(out, "train-images-idx3-ubyte")
lab_path = os.path.join(out, "train-labels-idx1-ubyte")
with open(img_path + ".tmp", "wb") as fi, open(lab_path + ".tmp", "wb") as fl:
    fi.write(struct.pack(">IIII", 0x803, n, 28, 28))
    fl.write(struct.pack(">II", 0x801, n))
    done = 0
    for k in range((n + m - 1) // m):
        take = min(m, n - done)
        fi.write(np.ascontiguousarray(variant(k)[:take]).tobytes())
        fl.write(labels[:take].tobytes())
        done += take
os.replace(img_path + ".tmp", img_path)
os.replace(lab_path + ".tmp", lab_path)
print("%s: %d images (%d bytes), %s" % (img_path, n, 16 + n * 784, lab_path))
PY
