"""Builds the taskdemo._taskdemo extension; metadata is in pyproject.toml.

Environment switches:
  TASKDEMO_WERROR=1    compile with -Werror (CI does)
  TASKDEMO_SANITIZE=1  compile with AddressSanitizer + UBSan; run pytest with
                       LD_PRELOAD=$(gcc -print-file-name=libasan.so)
                       PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0
  TASKDEMO_DEBUG=1     -O0 -g, assertions on
"""
import glob
import os

from setuptools import Extension, setup


def flag(name):
    return os.environ.get(name, "") not in ("", "0")


extra_compile_args = ["-std=gnu11", "-Wall", "-Wextra", "-pthread",
                      "-fvisibility=hidden"]
extra_link_args = ["-pthread"]
undef_macros = []
if flag("TASKDEMO_WERROR"):
    extra_compile_args.append("-Werror")
if flag("TASKDEMO_DEBUG"):
    extra_compile_args += ["-O0", "-g3"]
    undef_macros.append("NDEBUG")
if flag("TASKDEMO_SANITIZE"):
    sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                "-fno-sanitize-recover=undefined"]
    extra_compile_args += sanitize + ["-O1", "-g"]
    extra_link_args += sanitize

# The core (td_*.c, no Python.h) and the binding (_taskdemo.c, py_*.c) are
# one extension; csrc/tests/ holds the core's own C tests.
sources = sorted(glob.glob("csrc/td_*.c")) + ["csrc/_taskdemo.c"] + sorted(
    glob.glob("csrc/py_*.c"))

setup(
    ext_modules=[
        Extension(
            "taskdemo._taskdemo",
            sources=sources,
            include_dirs=["csrc"],
            define_macros=[("_GNU_SOURCE", "1")],
            undef_macros=undef_macros,
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
        )
    ],
)
