"""Read the weights of a torch.export `.pt2` archive without running anything stored in it.

`torch.export.load` is not safe on untrusted files: it unpickles pickled weights and constants with
`weights_only=False`, falls back to full unpickling for sample inputs, and turns the stored graph into
Python code. The workbench only needs the state_dict, so it reads the raw tensor records itself, guided
by the archive's JSON weight config (torch >= 2.6 layout), or, for older archives, a pickled state_dict
that must pass `weights_only=True`.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile

import torch

from workbench.core.errors import CheckpointError

# torch._export.serde.schema.ScalarType numbering (stable: it is the on-disk format).
_DTYPES = {1: torch.uint8, 2: torch.int8, 3: torch.int16, 4: torch.int32, 5: torch.int64,
           6: torch.float16, 7: torch.float32, 8: torch.float64, 12: torch.bool, 13: torch.bfloat16}


class NeedsCode(Exception):
    """The archive keeps its weights as pickled Python objects; only torch.export.load can read it."""


def _root(names: list[str]) -> str:
    for n in names:
        if n.endswith("archive_format") or n.endswith("serialized_exported_program.json"):
            return n.rsplit("/", 1)[0] + "/" if "/" in n else ""
    return ""


def _from_config(zf: zipfile.ZipFile, root: str, config_name: str, name: str) -> dict[str, torch.Tensor]:
    config = json.loads(zf.read(config_name))["config"]
    base = root + "data/weights/"
    storages: dict[str, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    for fqn, meta in config.items():
        if meta.get("use_pickle"):
            raise NeedsCode(fqn)
        tm = meta["tensor_meta"]
        dtype = _DTYPES.get(int(tm["dtype"]))
        if dtype is None:
            raise CheckpointError(f"{name}: weight {fqn} has a data type the workbench cannot read")
        path = meta["path_name"]
        if path not in storages:  # several weights may view one storage
            raw = zf.read(base + path)
            flat = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            storages[path] = flat
        sizes = [int(s["as_int"]) for s in tm["sizes"]]
        strides = [int(s["as_int"]) for s in tm["strides"]]
        offset = int(tm["storage_offset"]["as_int"])
        flat = storages[path]
        if flat.numel() == 0:
            out[fqn] = torch.zeros(sizes, dtype=dtype)
        else:
            out[fqn] = torch.as_strided(flat, sizes, strides, offset).clone()
    return out


def _weights_only(data: bytes) -> dict[str, torch.Tensor]:
    try:
        sd = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:
        raise NeedsCode("state_dict") from None
    if not isinstance(sd, dict):
        raise NeedsCode("state_dict")
    return sd


def read_pt2_state_dict(zf: zipfile.ZipFile, name: str) -> dict[str, torch.Tensor]:
    """The exported program's state_dict; NeedsCode if only unpickling could recover it."""
    if sys.byteorder != "little":
        raise NeedsCode("byte order")
    names = zf.namelist()
    root = _root(names)
    try:
        configs = [n for n in names if n.startswith(root + "data/weights/") and n.endswith("weights_config.json")]
        if len(configs) == 1:
            return _from_config(zf, root, configs[0], name)
        if len(configs) > 1:
            raise CheckpointError(f"{name} holds several exported models; the workbench reads one model per file")
        legacy = [n for n in names if n.startswith(root + "data/weights/") and n.endswith(".pt")]
        legacy += [n for n in names if n.endswith("serialized_state_dict.pt")]
        if len(legacy) == 1:
            return _weights_only(zf.read(legacy[0]))
    except (CheckpointError, NeedsCode):
        raise
    except Exception:  # bad JSON or zip entry, as_strided past the stored bytes, ...
        raise CheckpointError(f"{name} is damaged or not a PyTorch checkpoint (torch.export archive)") from None
    raise CheckpointError(f"{name} is a torch.export archive without readable weights")
