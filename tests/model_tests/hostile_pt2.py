"""Hostile torch.export archives for the safe loader's tests: each would run code if loaded carelessly."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path


class Payload:
    """Unpickling this creates `marker` (builtins.open(marker, 'w')): proof that something ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload_bytes(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker), protocol=2)


def rewrite(src: Path, dst: Path, replace: dict[str, bytes] | None = None, drop: tuple[str, ...] = ()) -> Path:
    """Copy the zip `src` to `dst`, replacing or adding the entries in `replace` and leaving out `drop`."""
    replace = dict(replace or {})
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = replace.pop(info.filename, None)
            zout.writestr(info.filename, zin.read(info.filename) if data is None else data)
        for name, data in replace.items():
            zout.writestr(name, data)
    return dst


def entry(path: Path, suffix: str) -> str:
    with zipfile.ZipFile(path) as zf:
        return next(n for n in zf.namelist() if n.endswith(suffix))


def pickled_weights(src: Path, dst: Path, marker: Path) -> Path:
    """The weight config says the first weight is pickled, and that weight is the payload."""
    cfg_name = entry(src, "weights_config.json")
    with zipfile.ZipFile(src) as zf:
        cfg = json.loads(zf.read(cfg_name))
    first = next(iter(cfg["config"]))
    cfg["config"][first]["use_pickle"] = True
    weight = cfg_name.rsplit("/", 1)[0] + "/" + cfg["config"][first]["path_name"]
    return rewrite(src, dst, {cfg_name: json.dumps(cfg).encode(), weight: payload_bytes(marker)})


def pickled_state_dict(src: Path, dst: Path, marker: Path) -> Path:
    """Older layout: no weight config, a pickled state_dict (the payload) instead."""
    cfg_name = entry(src, "weights_config.json")
    legacy = cfg_name.split("/", 1)[0] + "/serialized_state_dict.pt"
    return rewrite(src, dst, {legacy: payload_bytes(marker)}, drop=(cfg_name,))


def foreign_op(src: Path, dst: Path, target: str, marker: Path, replaced: str = "torch.ops.aten.relu.default") -> Path:
    """The first `replaced` call in the graph becomes a call of `target` with a marker-creating argument."""
    with zipfile.ZipFile(src) as zf:
        prog_name = next(n for n in zf.namelist() if "/models/" in n and n.endswith(".json"))
        prog = json.loads(zf.read(prog_name))
    for node in prog["graph_module"]["graph"]["nodes"]:
        if node["target"] == replaced:
            node["target"] = target
            node["inputs"].append({"name": "code", "arg": {"as_string": f"open({str(marker)!r}, 'w')"}, "kind": 1})
            break
    else:
        raise AssertionError(f"no {replaced} in the graph")
    return rewrite(src, dst, {prog_name: json.dumps(prog).encode()})


def injected_key(src: Path, dst: Path, marker: Path) -> Path:
    """A weight renamed so that, written unescaped into generated Python source, it would run code."""
    evil = f'fc.x"), open({str(marker)!r}, "w"), ("'
    with zipfile.ZipFile(src) as zf:
        prog_name = next(n for n in zf.namelist() if "/models/" in n and n.endswith(".json"))
        cfg_name = next(n for n in zf.namelist() if n.endswith("weights_config.json"))
        prog, cfg = json.loads(zf.read(prog_name)), json.loads(zf.read(cfg_name))
    for spec in prog["graph_module"]["signature"]["input_specs"]:
        if spec.get("parameter", {}).get("parameter_name") == "fc.weight":
            spec["parameter"]["parameter_name"] = evil
    cfg["config"][evil] = cfg["config"].pop("fc.weight")
    return rewrite(src, dst, {prog_name: json.dumps(prog).encode(), cfg_name: json.dumps(cfg).encode()})
