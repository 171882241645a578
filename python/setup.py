"""setup.py: `pip install --no-build-isolation ./python` builds bprop._core from the C sources
of this checkout (src/, include/): libbprop is compiled into the extension itself, so no CMake
build is needed first. Each kernel set gets the flags CMakeLists.txt gives it."""
import glob
import os
import platform
import re

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SRC, INCLUDE, KERNELS = (os.path.join(ROOT, p) for p in ("src", "include", "src/kernels"))
if not os.path.exists(os.path.join(INCLUDE, "bprop.h")):
    raise SystemExit(f"bprop's C sources are not at {ROOT}: build from a checkout of the repository")

# The flags CMakeLists.txt gives the library (C11, POSIX.1-2008, FMA contraction, OpenMP).
LIB_FLAGS = ["-std=c11", "-O3", "-ffp-contract=fast", "-fopenmp", "-fvisibility=hidden"]
X86 = platform.machine().lower() in ("x86_64", "amd64", "x64")
BASE = ["-march=x86-64", "-mtune=generic"] if X86 else []
KERNEL_COMMON = ["lists.c", "scratch.c", "softmax.c"]
KERNEL_SETS = [("kernels_generic.c", BASE)]
if X86:
    KERNEL_SETS += [("kernels_avx2.c", BASE + ["-mavx2", "-mfma"]),
                    ("kernels_avx512.c", BASE + ["-mavx512f", "-mavx2", "-mfma"])]


def version():
    with open(os.path.join(INCLUDE, "bprop.h")) as f:
        return re.search(r'#define BPROP_VERSION_STRING "([^"]+)"', f.read()).group(1)


class BuildWithLibrary(build_ext):
    """Compile libbprop's sources (each group with its own flags) into objects linked into the
    extension."""

    def _compile(self, sources, flags, macros=()):
        return self.compiler.compile(sources, output_dir=self.build_temp, macros=list(macros),
                                     include_dirs=[INCLUDE, SRC, KERNELS],
                                     extra_postargs=LIB_FLAGS + flags)

    def build_extension(self, ext):
        posix = [("_POSIX_C_SOURCE", "200809L")]
        objects = self._compile(sorted(glob.glob(os.path.join(SRC, "*.c"))), [], posix)
        # The kernels' common code (lists, scratch, softmax, the choice of a set), compiled once
        # for the baseline; choose.c knows the x86 sets exist.
        objects += self._compile([os.path.join(KERNELS, n) for n in KERNEL_COMMON], BASE, posix)
        objects += self._compile([os.path.join(KERNELS, "choose.c")], BASE,
                                 posix + ([("BPROP_KERNELS_X86", "1")] if X86 else []))
        for name, flags in KERNEL_SETS:
            objects += self._compile([os.path.join(KERNELS, name)], flags, posix)
        ext.extra_objects = objects
        super().build_extension(ext)


core = Extension(
    "bprop._core",
    sources=sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, "src", "*.c"))),
    include_dirs=[INCLUDE, numpy.get_include()],
    extra_compile_args=["-std=c11", "-O3", "-fvisibility=hidden"],
    extra_link_args=["-fopenmp", "-lz", "-lm"],
)

setup(
    name="bprop",
    version=version(),
    description="Two-layer ReLU/softmax networks trained by libbprop, as a scikit-learn classifier",
    packages=["bprop"],
    python_requires=">=3.8",
    install_requires=["numpy", "scikit-learn"],
    ext_modules=[core],
    cmdclass={"build_ext": BuildWithLibrary},
)
