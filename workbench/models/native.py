"""Small native CPU kernels: C source compiled with the system compiler on first use and cached.

The hashed layers' kernel (models/hashed/kernel.py) and DNS's mask update (methods/mask_update.py) are
built here. A build is cached under the workbench cache (`WORKBENCH_CACHE` or the platform cache dir),
named by a hash of its source, flags, compiler and the CPU's instruction-set flags, so a cache shared
between machines never hands a -march=native build to a CPU without its instructions. Where torch runs
on GNU OpenMP the kernel may be linked to torch's own libgomp (a second OpenMP runtime would run its
thread team beside torch's). Without a working compiler `build` returns None and callers fall back to
PyTorch code computing the same values.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

# -fno-trapping-math: without it GCC will not turn a clamp into a vector select on targets without mask
# registers (the hashing kernel's tanh ran as scalar code, 8x slower)
FLAG_SETS = (["-O3", "-march=native", "-fno-trapping-math", "-fopenmp-simd"],
             ["-O3", "-fno-trapping-math", "-fopenmp-simd"], ["-O2"])

_errors: list[str] = []


def note_error(text: str) -> None:
    _errors.append(text)


def last_error() -> str:
    return _errors[-1] if _errors else ""


def cache_dir() -> Path:
    root = os.environ.get("WORKBENCH_CACHE")
    if not root:
        import platformdirs
        root = platformdirs.user_cache_dir("compression-workbench")
    return Path(root) / "kernels"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_features() -> str:
    """The CPU's instruction-set flags: a -march=native build in a cache shared between machines (a
    network home) must not be loaded on a CPU that lacks its instructions (SIGILL)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def openmp_runtimes() -> set[str]:
    """Paths of the GNU OpenMP runtimes mapped into this process (Linux; empty elsewhere)."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return set()
    return {f[-1] for f in (line.split() for line in lines) if len(f) >= 6 and "libgomp" in f[-1].rsplit("/", 1)[-1]}


def _builds(flag_sets) -> list[tuple[list[str], list[str]]]:
    """(compiler flags, link inputs after the source) to try in order: first with OpenMP linked to the
    libgomp torch loaded (--as-needed drops the system libgomp that -fopenmp adds after it), then without."""
    plain = [(list(flags), []) for flags in flag_sets]
    runtimes = openmp_runtimes()
    if len(runtimes) != 1:
        return plain
    gomp = runtimes.pop()
    return [(flags + ["-fopenmp"], ["-Wl,--as-needed", gomp, f"-Wl,-rpath,{Path(gomp).parent}"])
            for flags in flag_sets[:2]] + plain


def build(text: str, prefix: str, flag_sets=FLAG_SETS) -> Path | None:
    """Compile C source `text` into a shared object in the cache (named by a hash of the source, the
    flags and the CPU) and return its path; None where no compiler or no flag set works (the reason is
    `last_error()`). Flag sets are tried in order, each first with OpenMP where torch's runtime allows."""
    cc = _compiler()
    if cc is None:
        _errors.append("no C compiler found (set CC)")
        return None
    ext = ".dll" if os.name == "nt" else ".so"
    for flags, libs in _builds(flag_sets):
        digest = hashlib.sha256("\n".join([text, cc, *flags, *libs, platform.machine(), _cpu_features()]
                                          ).encode()).hexdigest()[:16]
        target = cache_dir() / f"{prefix}-{digest}{ext}"
        if target.exists():
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                src = Path(tmp) / "k.c"
                src.write_text(text)
                out = Path(tmp) / f"k{ext}"
                done = subprocess.run([cc, *flags, "-shared", "-fPIC", "-o", str(out), str(src), *libs],
                                      capture_output=True, text=True, timeout=120)
                if done.returncode == 0:
                    os.replace(out, target)
                    return target
                _errors.append(f"{Path(cc).name} {' '.join(flags)}: {done.stderr.strip()[-300:]}")
        except (OSError, subprocess.SubprocessError) as exc:
            _errors.append(f"{Path(cc).name}: {exc}")
    return None
