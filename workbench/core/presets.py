"""Presets: paper settings (and settings measured here) stored as data under `resources/presets/`.

A preset is a JSON object: name, model, dataset, source, description, and either `method` + `params` +
`train` (one stage) or `stages` (a pipeline). `--set` and `--epochs` on the command line override it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources as _res
from pathlib import Path

from workbench.core.config import StageConfig
from workbench.core.errors import WorkbenchError


def presets_dir() -> Path:
    here = Path(__file__).resolve().parents[2] / "resources" / "presets"
    if here.is_dir():
        return here
    return Path(str(_res.files("workbench.resources") / "presets"))


@lru_cache(maxsize=1)
def _load_all() -> dict[str, dict]:
    out = {}
    for path in sorted(presets_dir().glob("*.json")):
        preset = json.loads(path.read_text())
        if "stages" not in preset:
            preset["stages"] = [{"method": preset["method"], "params": preset.get("params", {}),
                                 "train": preset.get("train", {})}]
        preset.setdefault("method", "+".join(s["method"] for s in preset["stages"]))
        out[preset["name"]] = preset
    return out


def list_presets() -> list[dict]:
    return list(_load_all().values())


def get_preset(name: str) -> dict:
    presets = _load_all()
    if name not in presets:
        raise WorkbenchError(f"unknown preset {name!r}; known: {', '.join(presets) or 'none'}")
    return presets[name]


def preset_stages(name: str) -> list[StageConfig]:
    return [StageConfig(s["method"], dict(s.get("params", {})), dict(s.get("train", {})))
            for s in get_preset(name)["stages"]]
