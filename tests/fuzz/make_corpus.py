#!/usr/bin/env python3
"""make_corpus.py: regenerate the seed corpora of the fuzz targets in tests/fuzz/corpus/.

Usage: tests/fuzz/make_corpus.py BPROP   (BPROP: a built bprop program, for the model seeds)
Each seed is a small valid file or a near miss, prefixed by the target's flag byte(s) (see the
comment at the top of each fuzz_<name>.c). Needs only the Python standard library.
"""
import gzip
import os
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


# ---- IDX --------------------------------------------------------------------------------------

def idx(magic, dims, body):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(body)


def idx_seed(flags, images, labels):
    return bytes([flags]) + struct.pack("<H", len(images)) + images + labels


def idx_corpus():
    img = idx(0x803, [3, 2, 2], range(0, 240, 20))
    lab = idx(0x801, [3], [0, 2, 1])
    put("idx", "valid", idx_seed(0, img, lab))
    put("idx", "valid_gz_both", idx_seed(3, img, lab))
    put("idx", "valid_no_labels", idx_seed(4, img, b""))
    put("idx", "valid_classes10", idx_seed(8, img, lab))
    put("idx", "valid_4d", idx_seed(0, idx(0x804, [2, 1, 2, 2], range(8)), idx(0x801, [2], [1, 0])))
    put("idx", "raw_gzip_images", idx_seed(0, gz(img), lab))
    put("idx", "label_too_big", idx_seed(8, img, idx(0x801, [3], [0, 12, 1])))
    put("idx", "pixels_short", idx_seed(0, img[:-1], lab))
    put("idx", "pixels_trailing", idx_seed(0, img + b"\x00", lab))
    put("idx", "count_mismatch", idx_seed(0, img, idx(0x801, [2], [0, 1])))
    put("idx", "labels_as_images", idx_seed(0, lab, img))
    put("idx", "zero_dim", idx_seed(0, idx(0x803, [3, 0, 2], []), lab))
    put("idx", "huge_dims", idx_seed(0, idx(0x803, [0xFFFFFFFF, 0xFFFF, 0xFFFF], range(4)), lab))
    put("idx", "gzip_cut", idx_seed(0, gz(img)[:-6], lab))
    bad_crc = bytearray(gz(img))
    bad_crc[-6] ^= 0xFF
    put("idx", "gzip_bad_crc", idx_seed(0, bytes(bad_crc), lab))


# ---- CSV --------------------------------------------------------------------------------------

def csv_corpus():
    labelled = b"label,a,b,c\n0,0.5,1,-2\n2,1e-3,3.25,4\n1,7,8,9\n"
    put("csv", "valid_header", b"\x00" + labelled)
    put("csv", "valid_gz", b"\x01" + labelled)
    put("csv", "valid_unlabelled", b"\x02" + b"1.5,2,3\n4,5,6\n")
    put("csv", "valid_classes5", b"\x04" + b"4,1,2\n0,3,4\n")
    put("csv", "crlf_bom_blank_tail", b"\x00" + b"\xef\xbb\xbf1, 2 ,\t3\r\n0,4,5\r\n\r\n\n")
    put("csv", "numeric_header", b"\x00" + b"1,2,3\n0,0,0\n")
    put("csv", "raw_gzip", b"\x00" + gz(labelled))
    put("csv", "gzip_cut", b"\x00" + gz(labelled)[:-5])
    bad = bytearray(gz(labelled))
    bad[-8] ^= 0x55
    put("csv", "gzip_bad_crc", b"\x00" + bytes(bad))
    put("csv", "ragged", b"\x00" + b"0,1,2\n1,2\n")
    put("csv", "nan_inf", b"\x00" + b"0,nan,1\n1,inf,2\n0,1e39,3\n")
    put("csv", "negative_label", b"\x00" + b"-1,1,2\n")
    put("csv", "huge_label", b"\x00" + b"99999999999,1,2\n")
    put("csv", "label_not_int", b"\x00" + b"1.5,1,2\n0,1,2\n")
    put("csv", "label_over_classes", b"\x04" + b"7,1,2\n")
    put("csv", "blank_inside", b"\x00" + b"0,1\n\n1,2\n")
    put("csv", "nul_byte", b"\x00" + b"0,1\x002\n")
    put("csv", "header_only", b"\x00" + b"a,b,c\n")
    put("csv", "empty", b"\x00")
    put("csv", "idx_images_unlabelled", b"\x02" + idx(0x803, [2, 1, 2], [1, 2, 3, 4]))
    put("csv", "idx_labels_file", b"\x00" + idx(0x801, [2], [1, 2]))


# ---- model ------------------------------------------------------------------------------------

def fix_crc(b):
    return b[:-4] + struct.pack("<I", zlib.crc32(b[:-4]) & 0xFFFFFFFF)


def model_corpus(bprop):
    with tempfile.TemporaryDirectory() as t:
        train = os.path.join(t, "train.csv")
        with open(train, "w") as f:
            for i in range(12):
                f.write("%d,%g,%g,%g,%g\n" % (i % 3, i * 0.1, 1 - i * 0.05, (i % 4) * 0.3, 0.2))
        variants = {"bias": [], "no_bias": ["--no-bias"], "standardized": ["--standardize"]}
        for name, extra in variants.items():
            out = os.path.join(t, name + ".bpm")
            subprocess.run([bprop, "train", "--train", train, "--hidden", "3", "--epochs", "1",
                            "--batch", "4", "--threads", "1", "--quiet", "--save", out] + extra,
                           check=True, stdout=subprocess.DEVNULL)
            with open(out, "rb") as f:
                model = f.read()
            put("model", "valid_" + name, b"\x00" + model)
            put("model", "valid_" + name + "_fixcrc", b"\x01" + model)
        with open(os.path.join(t, "standardized.bpm"), "rb") as f:
            m = f.read()
    put("model", "truncated", b"\x00" + m[:-9])
    put("model", "trailing", b"\x00" + m + b"\x00")
    put("model", "bad_crc", b"\x00" + m[:-1] + bytes([m[-1] ^ 1]))
    put("model", "version2", b"\x01" + m[:8] + struct.pack("<I", 2) + m[12:])
    put("model", "old_header_408", b"\x01" + fix_crc(m[:12] + struct.pack("<I", 408) + m[16:424] + m[456:]))
    put("model", "nan_param", b"\x01" + m[:456] + struct.pack("<f", float("nan")) + m[460:])
    put("model", "huge_sizes", b"\x01" + m[:16] + struct.pack("<QQQ", 1 << 40, 1 << 40, 3) + m[40:])
    put("model", "bad_magic", b"\x00" + b"BPROPMDX" + m[8:])


# ---- npy --------------------------------------------------------------------------------------

def npy(header, body, version=(1, 0), pad=True):
    h = header.encode("latin1")
    pre = 10 if version[0] == 1 else 12
    if pad:
        h += b" " * ((64 - (pre + len(h) + 1) % 64) % 64) + b"\n"
    size = struct.pack("<H", len(h)) if version[0] == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes(version) + size + h + body


def f4(*v):
    return struct.pack("<%df" % len(v), *v)


def npy_corpus():
    std = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }"
    put("npy", "valid_2d", npy(std % "(2, 3)", f4(1, 2, 3, 4, 5, 6)))
    put("npy", "valid_1d", npy(std % "(3,)", f4(0.5, -1, 2)))
    put("npy", "valid_scalar", npy(std % "()", f4(7)))
    put("npy", "valid_f8", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                               struct.pack("<2d", 1.0 / 3, -2.5)))
    put("npy", "valid_v2", npy(std % "(2, 1)", f4(1, 2), (2, 0)))
    put("npy", "valid_v3", npy(std % "(1, 2)", f4(1, 2), (3, 0)))
    put("npy", "valid_odd_layout", npy('{ "shape" :(2 ,2,) ,"fortran_order":False,\t"descr":"<f4"}',
                                       f4(1, 2, 3, 4), pad=False) + b"")
    put("npy", "valid_py2_long", npy(std % "(2L, 1L)", f4(1, 2)))
    put("npy", "fortran", npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", f4(1, 2, 3, 4)))
    put("npy", "big_endian", npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", struct.pack(">2f", 1, 2)))
    put("npy", "int64", npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", struct.pack("<q", 3)))
    put("npy", "structured", npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", f4(1)))
    put("npy", "truncated_data", npy(std % "(2, 3)", f4(1, 2, 3, 4, 5)))
    put("npy", "trailing", npy(std % "(2,)", f4(1, 2, 3)))
    put("npy", "missing_key", npy("{'descr': '<f4', 'shape': (2,), }", f4(1, 2)))
    put("npy", "duplicate_key", npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", f4(1)))
    put("npy", "not_a_tuple", npy(std % "(2)", f4(1, 2)))
    put("npy", "huge_shape", npy(std % "(4294967296, 4294967296, 4294967296)", f4(1)))
    put("npy", "nan", npy(std % "(2,)", f4(1, float("nan"))))
    put("npy", "f8_overflow", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", struct.pack("<d", 1e300)))
    put("npy", "version4", npy(std % "(1,)", f4(1), (4, 0)))
    put("npy", "header_cut", npy(std % "(1,)", f4(1))[:40])
    put("npy", "bad_magic", b"\x93NUMPZ" + npy(std % "(1,)", f4(1))[6:])
    npy_data_corpus()


def npy_set(flags, images, labels):
    return bytes([flags]) + struct.pack("<H", len(images)) + images + labels


def npy_data_corpus():
    """Training sets: a flag byte (not 0x93), the images length, images .npy, labels .npy."""
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }"
    u8 = npy(hdr % ("|u1", "(3, 2, 2)"), bytes([0, 255, 7, 128, 1, 2, 3, 4, 9, 0, 0, 200]))
    f4s = npy(hdr % ("<f4", "(3, 4)"), f4(0, 1, 0.5, 2, -1, 0, 0, 3, 1e-3, 0, 0, 0))
    lab8 = npy(hdr % ("<i8", "(3,)"), struct.pack("<3q", 2, 0, 1))
    lab4 = npy(hdr % ("<i4", "(3,)"), struct.pack("<3i", 1, 9, 0))
    labu = npy(hdr % ("|u1", "(3,)"), bytes([0, 1, 1]))
    put("npy", "set_u8_i8", npy_set(0, u8, lab8))
    put("npy", "set_f4_u1_classes10", npy_set(8, f4s, labu))
    put("npy", "set_u8_i4_gz", npy_set(3, gz(u8), gz(lab4)))
    put("npy", "set_no_labels", npy_set(4, f4s, b""))
    put("npy", "set_count_mismatch", npy_set(0, u8, npy(hdr % ("|u1", "(2,)"), bytes([0, 1]))))
    put("npy", "set_negative_label", npy_set(0, u8, npy(hdr % ("<i4", "(3,)"), struct.pack("<3i", 1, -1, 0))))
    put("npy", "set_label_over_10", npy_set(8, u8, lab4))
    put("npy", "set_labels_2d", npy_set(0, u8, npy(hdr % ("|u1", "(3, 1)"), bytes([0, 1, 1]))))
    put("npy", "set_images_1d", npy_set(4, npy(hdr % ("|u1", "(4,)"), bytes(4)), b""))
    put("npy", "set_f4_nan", npy_set(4, npy(hdr % ("<f4", "(1, 2)"), f4(1, float("nan"))), b""))
    put("npy", "set_f8_images", npy_set(4, npy(hdr % ("<f8", "(1, 1)"), struct.pack("<d", 1)), b""))
    put("npy", "set_pixels_short", npy_set(4, u8[:-3], b""))
    put("npy", "set_unaligned_f4", npy_set(4, npy(hdr % ("<f4", "(1, 2)"), f4(1, 2), pad=False), b""))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    idx_corpus()
    csv_corpus()
    model_corpus(sys.argv[1])
    npy_corpus()


if __name__ == "__main__":
    main()
