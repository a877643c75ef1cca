"""What the benchmark ran on: CPU, OS, Python, package versions, commit."""
import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata


def _run(cmd, cwd=None):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _lscpu():
    fields = {}
    for line in _run(["lscpu"]).splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    keep = ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket",
            "Hypervisor vendor", "L2 cache", "L3 cache")
    return {k: fields[k] for k in keep if k in fields}


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _extension():
    """Which build of the extension this process runs: the code in the
    working tree may have moved on since it was built."""
    import taskdemo._taskdemo as ext
    path = ext.__file__
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    return {"path": path, "sha256_16": digest,
            "mtime": os.path.getmtime(path)}


def describe():
    """A dict for results.json and the docs.  The git state is that of the
    tree taskdemo was imported from (PYTHONPATH may point at a clean
    checkout of a commit)."""
    import taskdemo
    repo = os.path.dirname(os.path.dirname(os.path.abspath(
        taskdemo.__file__)))
    dirty = _run(["git", "status", "--porcelain", "--", "csrc", "taskdemo",
                  "setup.py"], cwd=repo)
    return {
        "cpu": _lscpu(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_build": platform.python_implementation() + " " +
        " ".join(platform.python_build()),
        "versions": {d: _version(d) for d in (
            "taskdemo", "fastthreadpool", "matplotlib", "Cython")},
        "taskdemo_tree": repo,
        "git_commit": _run(["git", "rev-parse", "HEAD"], cwd=repo),
        "git_dirty_paths": dirty.splitlines(),
        "extension": _extension(),
        "loadavg_at_start": os.getloadavg(),
    }
