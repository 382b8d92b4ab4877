"""Fetching a missing named set into the cache, verified by SHA-256 before anything is kept."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import urllib.request
import zlib
from pathlib import Path

from workbench.core.errors import DataError
from workbench.data import locate

CONNECT_TIMEOUT = 5.0

MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
}

# SHA-256 of the *uncompressed* files: mirrors re-gzip, so the .gz bytes differ between them.
# Only sets with checksums known for certain are downloadable (Fashion-MNIST and CIFAR-10 are not).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
}


class Offline(Exception):
    """No file could be fetched from any mirror; the caller explains where to put the files."""


def downloadable(name: str) -> bool:
    return name in SHA256 and name in MIRRORS


def fetch(url: str, timeout: float = CONNECT_TIMEOUT) -> bytes:
    """The whole body at url. Tests replace this function, so nothing else opens connections."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _content(data: bytes) -> bytes | None:
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return None


def _write_atomic(dest: Path, data: bytes) -> None:
    # Write beside the target and rename, so an interrupted download never leaves a partial file.
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def download(name: str) -> Path:
    """Fetch every file of a named set into the cache; returns the folder.

    Raises Offline when nothing could be reached, DataError when a file was fetched but is wrong.
    """
    spec = locate.SETS[name]
    folder = locate.cache_dir() / spec.subdirs[0]
    for base, expected in SHA256[name].items():
        if locate.existing_file(folder, base):
            continue  # an earlier, partly successful download already verified it
        bad_url = None
        for mirror in MIRRORS[name]:
            url = f"{mirror}{base}.gz"
            try:
                data = fetch(url)
            except (OSError, http.client.HTTPException, ValueError):  # URLError, timeouts included
                continue  # offline or mirror down: try the next one
            content = _content(data)
            if content is None or hashlib.sha256(content).hexdigest() != expected:
                bad_url = url
                continue
            try:
                folder.mkdir(parents=True, exist_ok=True)
                _write_atomic(folder / (base + ".gz" if content is not data else base), data)
            except OSError as e:
                raise DataError(f"cannot save {base} into {folder}: {e.strerror or e}") from None
            break
        else:
            if bad_url:
                raise DataError(f"{spec.title} download {bad_url} does not match its SHA-256; "
                                f"nothing was saved")
            raise Offline(base)
    return folder
