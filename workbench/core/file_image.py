"""Putting a run file on disk whole, and telling whether its writer is still alive.

The run store (store.py) builds each run file in memory and hands its complete image here after every
point: the image goes to a temporary file beside the run file, which then replaces it by one rename.
So the file at the run's path is always a whole, consistent HDF5 file: readers, `h5dump`, a killed
process, and a full disk can only ever meet the previous complete image or the next one, never a half.

- Room is checked before writing (free space on the file system, and the process's file size limit,
  `ulimit -f`), so a run normally stops before the disk is full; a write that fails anyway (another
  process filled the disk in between) leaves the previous image untouched.
- The writer holds an open-file-description read lock (Linux F_OFD_SETLK) on the current image. The
  kernel drops it when the process dies, even by kill -9, so `writer_alive` can tell a run still being
  written from one whose writer is gone. OFD locks neither conflict with HDF5's own flock() locking
  (readers with default locking open the file freely) nor vanish when the same process closes another
  descriptor of the file (as POSIX record locks do, e.g. when the app reads the run it is writing).
  Where there are no OFD locks (not Linux) liveness is unknown (None).
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
from pathlib import Path

try:
    import fcntl
except ImportError:             # Windows
    fcntl = None
try:
    import resource
except ImportError:             # Windows
    resource = None

MARGIN = 64 * 1024              # left free for the file system's own bookkeeping
# struct flock on 64-bit Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid
_FLOCK = "hhqqi4x"
_OFD = (fcntl is not None and hasattr(fcntl, "F_OFD_GETLK") and struct.calcsize("P") == 8
        and struct.calcsize(_FLOCK) == 32)


def size_text(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def check_room(directory: Path, free_needed: int, file_size: int) -> None:
    """Raise OSError(ENOSPC / EFBIG) unless `free_needed` bytes (plus a margin) are free in `directory`
    and a file of `file_size` bytes is within this process's file size limit."""
    free = shutil.disk_usage(directory).free
    if free < free_needed + MARGIN:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: {size_text(free)} free, "
                      f"{size_text(free_needed + MARGIN)} needed")
    if resource is not None:
        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY and file_size + MARGIN > soft:
            raise OSError(errno.EFBIG, f"{os.strerror(errno.EFBIG)}: the file size limit, ulimit -f, is "
                          f"{size_text(soft)}")


def create(path: Path, data: bytes) -> int:
    """Create `path` exclusively (FileExistsError if it is there, even as a dangling link) holding `data`;
    returns its descriptor, locked. On failure nothing is left behind."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        _write_all(fd, data)
        _lock(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)        # ours: created just now; a 0-byte run file helps nobody
        raise
    return fd


def replace(path: Path, data: bytes, old_fd: int | None, sync: bool = False) -> int:
    """Write `data` beside `path` and rename it over `path`; returns the new descriptor (locked) and
    closes `old_fd`. On failure `path` is untouched and the partial temporary file removed."""
    tmp = path.with_name(f".{path.name}.part")     # not *.h5: never taken for a run file
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        _write_all(fd, data)
        if sync:                    # the run's last image: on the disk before its name points at it
            os.fsync(fd)
        _lock(fd)                   # locked before it takes the name: the file at `path` always is
        os.replace(tmp, path)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    if old_fd is not None:
        os.close(old_fd)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _flock(kind: int) -> bytes:
    return struct.pack(_FLOCK, kind, os.SEEK_SET, 0, 0, 0)      # the whole file; l_pid must be 0 for OFD


def _lock(fd: int) -> None:
    if not _OFD:
        return
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_RDLCK))
    except OSError:                 # a file system without locks: liveness stays unknown to readers
        pass


def writer_alive(path: str | os.PathLike) -> bool | None:
    """Whether a live process holds `path` as its run file's current image (None: cannot tell here)."""
    if not _OFD:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        held = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock(fcntl.F_WRLCK))
        if struct.unpack(_FLOCK, held)[0] != fcntl.F_UNLCK:
            return True
        # Unlocked, but replaced since we opened it: the writer has just put a newer image in place.
        mine, now = os.fstat(fd), os.stat(path)
        return (mine.st_ino, mine.st_dev) != (now.st_ino, now.st_dev)
    except OSError:
        return None
    finally:
        os.close(fd)
