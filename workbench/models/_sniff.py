"""Tell checkpoint formats apart by content, and tell "unsafe" from "damaged" without unpickling."""

from __future__ import annotations

import io
import pickletools
import re
import zipfile
from pathlib import Path

from workbench.core.errors import CheckpointError

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# Opcodes that import a Python callable; REDUCE/BUILD then call it. Plain tensors need only torch's.
_GLOBAL_OPS = {"GLOBAL", "INST", "STACK_GLOBAL"}
# What a plain tensor checkpoint imports; anything else is a Python object that needs code to rebuild.
_TENSOR_GLOBALS = re.compile(r"collections\.OrderedDict|torch\._utils\.\w+|torch\._tensor\.\w+|torch\.\w*Storage"
                             r"|torch\.(device|Size|dtype|u?int\d*|float\d*|bfloat16|bool)|torch\.nn\.parameter\.Parameter")
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING"}


def sniff(path: Path) -> str:
    """One of "torch.save", "torchscript", "torch.export", "safetensors", "zip", "pickle"."""
    name = path.name or str(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise CheckpointError(f"checkpoint {name} is empty")
    if head[:4] in _ZIP_MAGIC:
        return _zip_kind(path, name)
    # safetensors: u64 little-endian header length, then a JSON object.
    header_len = int.from_bytes(head[:8], "little") if len(head) >= 9 else 0
    if 2 <= header_len <= size - 8 and head[8:9] == b"{":
        return "safetensors"
    return "pickle"  # torch.save's legacy format is a run of pickles; torch.load tells the rest


def _zip_kind(path: Path, name: str) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except Exception:  # truncated: no central directory
        raise CheckpointError(f"{name} is damaged or not a PyTorch checkpoint") from None
    tails = {n.rsplit("/", 1)[-1] for n in names}
    if "constants.pkl" in tails or any(n.startswith("code/") or "/code/" in n for n in names):
        return "torchscript"
    if "archive_format" in tails or "serialized_exported_program.json" in tails:
        return "torch.export"
    if "data.pkl" in tails:
        return "torch.save"
    return "zip"


def _pickle_bytes(path: Path, kind: str) -> bytes:
    if kind == "torch.save":
        with zipfile.ZipFile(path) as zf:
            entry = next(n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "data.pkl")
            return zf.read(entry)
    return path.read_bytes()


def _scan_globals(data: bytes) -> list[str]:
    """Callables the pickle(s) would import, read with pickletools (which never executes anything)."""
    found: list[str] = []
    stream = io.BytesIO(data)
    for _ in range(8):  # legacy torch.save writes a few pickles back to back, then raw storage bytes
        strings: list[str] = []
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name in _STRING_OPS:
                    strings.append(str(arg))
                elif op.name == "STACK_GLOBAL":
                    found.append(".".join(strings[-2:]))
                elif op.name in _GLOBAL_OPS:
                    found.append(str(arg).replace(" ", "."))
        except Exception:
            break
        if stream.tell() >= len(data):
            break
    return found


def code_globals(path: Path, kind: str, exc: Exception) -> str | None:
    """Why a weights_only load failed: the offending callable(s) if the file imports code, else None."""
    match = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if match:
        return match.group(1)
    try:
        found = _scan_globals(_pickle_bytes(path, kind))
    except Exception:
        return None
    odd = [g for g in dict.fromkeys(found) if not _TENSOR_GLOBALS.fullmatch(g)]
    return ", ".join(odd[:3]) if odd else None  # only tensor globals: the pickle itself is broken
