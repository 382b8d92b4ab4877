"""Presets: paper settings (and settings measured here) stored as data.

A preset is a JSON object: name, model, dataset, source, description, and either `method` + `params` +
`train` (one stage) or `stages` (a pipeline); optionally `huffman`, `measured` (what it gave here: the
references it was measured on, n, the spread of accuracy and storage ratio, the command and date),
`target` (the paper's ratio and error) and `needs_reference` (a sentence: the model or checkpoint its
knobs were fitted to). `--set` and `--epochs` on the command line override it.

Two places hold presets: the shipped ones under `resources/presets/`, and the user's, saved by
"promote a run to a preset" into WORKBENCH_PRESETS or else the user config folder. Both load together;
on a name clash the shipped one wins. A user file that is not a preset (broken JSON, someone else's
JSON) is skipped with a warning line (`preset_warnings`), never a crash: the folder is the user's, a
stray file there must not take the shipped presets down with it. A broken shipped file is a bug in the
package and stops with one line naming it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from functools import lru_cache
from importlib import resources as _res
from pathlib import Path

from workbench.core.config import StageConfig
from workbench.core.errors import WorkbenchError

ENV_VAR = "WORKBENCH_PRESETS"
# A user preset's name is its file name too: no path separators, nothing hidden, nothing a shell mangles.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


def presets_dir() -> Path:
    here = Path(__file__).resolve().parents[2] / "resources" / "presets"
    if here.is_dir():
        return here
    return Path(str(_res.files("workbench.resources") / "presets"))


def user_presets_dir() -> Path:
    """Where the user's presets live: $WORKBENCH_PRESETS, else the user config folder's `presets`."""
    root = os.environ.get(ENV_VAR)
    if root:
        return Path(root).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("compression-workbench")) / "presets"


def normalize(preset) -> dict:
    """The preset with `stages` and `method` filled in (a one-stage preset may give method/params/train);
    raises ValueError with the reason when it is not a preset."""
    if not isinstance(preset, dict):
        raise ValueError("not a JSON object")
    for key in ("name", "dataset"):
        if not isinstance(preset.get(key), str) or not preset[key]:
            raise ValueError(f"no {key!r}")
    if not isinstance(preset.get("model", ""), str):
        raise ValueError("'model' is not text")
    if "stages" not in preset:
        if not isinstance(preset.get("method"), str):
            raise ValueError("neither 'stages' nor 'method'")
        preset["stages"] = [{"method": preset["method"], "params": preset.get("params", {}),
                             "train": preset.get("train", {})}]
    stages = preset["stages"]
    if not isinstance(stages, list) or not stages:
        raise ValueError("'stages' is not a list of stages")
    for i, stage in enumerate(stages, 1):
        if not (isinstance(stage, dict) and isinstance(stage.get("method"), str)
                and isinstance(stage.get("params", {}), dict) and isinstance(stage.get("train", {}), dict)):
            raise ValueError(f"stage {i} is not {{method, params, train}}")
    for key, kind in (("measured", dict), ("target", dict), ("needs_reference", str), ("description", str),
                      ("source", str)):
        if key in preset and not isinstance(preset[key], kind):
            raise ValueError(f"{key!r} is not {'an object' if kind is dict else 'text'}")
    if isinstance(preset.get("measured"), dict) and not isinstance(preset["measured"].get("references", []), list):
        raise ValueError("'measured.references' is not a list")
    preset.setdefault("method", "+".join(s["method"] for s in stages))
    return preset


def _read(path: Path) -> dict:
    try:
        return normalize(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON (line {exc.lineno}: {exc.msg})") from None


@lru_cache(maxsize=4)
def _load_all(user_dir: str) -> tuple[dict[str, dict], dict[str, Path], tuple[str, ...]]:
    """(presets by name, the file of each, warning lines). Keyed by the user folder, so a changed
    WORKBENCH_PRESETS is seen; a save clears it (reload_presets)."""
    presets: dict[str, dict] = {}
    files: dict[str, Path] = {}
    warnings: list[str] = []
    for path in sorted(presets_dir().glob("*.json")):
        try:
            preset = _read(path)
        except ValueError as exc:
            raise WorkbenchError(f"shipped preset file {path} {_reason(exc)}") from None
        presets[preset["name"]] = preset
        files[preset["name"]] = path
    folder = Path(user_dir)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            preset = _read(path)
        except ValueError as exc:
            warnings.append(f"skipped user preset file {path}: {_reason(exc)}")
            continue
        name = preset["name"]
        if name in presets:
            whose = "a shipped" if files[name].parent == presets_dir() else "another user"
            warnings.append(f"skipped user preset file {path}: {name!r} is {whose} preset's name "
                            f"({files[name]})")
            continue
        presets[name] = preset
        files[name] = path
    return presets, files, tuple(warnings)


def _reason(exc: ValueError) -> str:
    text = str(exc)
    return text if text.startswith(("is ", "cannot ")) else f"is not a preset ({text})"


def _loaded() -> tuple[dict[str, dict], dict[str, Path], tuple[str, ...]]:
    return _load_all(str(user_presets_dir()))


def reload_presets() -> None:
    """Forget what was read, so the next look reads both folders again (after a save, or a file the user
    put there by hand)."""
    _load_all.cache_clear()


def list_presets() -> list[dict]:
    return list(_loaded()[0].values())


def preset_warnings() -> list[str]:
    """One line per user preset file that was skipped, and why."""
    return list(_loaded()[2])


def preset_file(name: str) -> Path:
    get_preset(name)
    return _loaded()[1][name]


def is_user_preset(name: str) -> bool:
    return preset_file(name).parent != presets_dir()


def get_preset(name: str) -> dict:
    presets, _files, warnings = _loaded()
    if name not in presets:
        skipped = f" ({len(warnings)} user preset file(s) skipped; see `workbench presets`)" if warnings else ""
        raise WorkbenchError(f"unknown preset {name!r}; known: {', '.join(presets) or 'none'}{skipped}")
    return presets[name]


def preset_stages(name: str) -> list[StageConfig]:
    return [StageConfig(s["method"], dict(s.get("params", {})), dict(s.get("train", {})))
            for s in get_preset(name)["stages"]]


def check_new_name(name: str, replace: bool = False) -> None:
    """Refuse a name a user preset may not take: not a plain file name, a shipped preset's name, or (unless
    `replace`) a user preset that exists."""
    if not NAME_RE.fullmatch(name or ""):
        raise WorkbenchError(f"preset name {name!r}: use letters, digits, '.', '_' and '-' (at most 80, "
                             "starting with a letter or digit)")
    if name == "promote":          # `workbench presets promote` is the command, not a preset to show
        raise WorkbenchError("'promote' cannot be a preset's name; choose another name")
    presets, files, _warnings = _loaded()
    if name in presets and files[name].parent == presets_dir():
        raise WorkbenchError(f"{name!r} is the name of a shipped preset; choose another name")
    target = user_presets_dir() / f"{name}.json"
    if not replace and (name in presets or target.exists()):
        raise WorkbenchError(f"a user preset named {name!r} exists ({files.get(name, target)}); choose another "
                             "name or replace it")


def save_user_preset(preset: dict, replace: bool = False) -> Path:
    """Write a preset into the user folder as NAME.json (atomically: a temporary file renamed over it, so
    a crash never leaves half a preset) and return its path."""
    preset = dict(preset)
    name = preset.get("name", "")
    check_new_name(name, replace)
    try:
        normalize(dict(preset))
    except ValueError as exc:
        raise WorkbenchError(f"preset {name!r} is not complete: {exc}") from None
    folder = user_presets_dir()
    target = folder / f"{name}.json"
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(preset, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise WorkbenchError(f"cannot save preset {name!r} in {folder}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        reload_presets()
    return target
