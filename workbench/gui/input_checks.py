"""Checks of what the user typed in the setup panel, before Run: paths and data set names.

`file_problem`, `folder_problem` and `dataset_problem` only look at the file system (stat, access,
a directory listing of the search folders), cheap enough for every keystroke on the GUI thread.
`python_names` and `checkpoint_code` read files: the panel runs them in the thread pool.
"""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

from workbench import data as data_mod
from workbench.core.errors import WorkbenchError
from workbench.data import download as data_download
from workbench.data.locate import SETS, canonical
from workbench.models._sniff import code_globals, sniff


def file_problem(path: str, what: str) -> str:
    """Why `path` cannot be read as a file ('' when it can): missing, a folder, not a plain file (a
    pipe or a device would block the reader), or unreadable. `what` names the field."""
    p = Path(path).expanduser()
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        return f"{what}: {path} does not exist"
    except OSError as exc:
        return f"{what}: {path}: {exc.strerror or exc}"
    if stat.S_ISDIR(mode):
        return f"{what}: {path} is a folder, not a file"
    if not stat.S_ISREG(mode):
        return f"{what}: {path} is not a regular file"
    if not os.access(p, os.R_OK):
        return f"{what}: {path} cannot be read (permission denied)"
    return ""


def folder_problem(path: str, what: str) -> str:
    p = Path(path).expanduser()
    if not p.exists():
        return f"{what}: {path} does not exist"
    if not p.is_dir():
        return f"{what}: {path} is a file, not a folder"
    if not os.access(p, os.R_OK | os.X_OK):
        return f"{what}: {path} cannot be read (permission denied)"
    return ""


def dataset_problem(name: str, data_dir: str = "") -> tuple[str, str]:
    """(problem, where): why the data set cannot be loaded as named ('' when it can, as far as the file
    system tells) and, for a named set that was found, the folder it is in."""
    name = name.strip()
    if not name:
        return "choose a data set", ""
    kind, sep, rest = name.partition(":")
    if sep and kind.strip().lower() in ("folder", "arrays"):
        if not rest.strip():
            return f"Data set: {name} needs a path after the colon", ""
        check = folder_problem if kind.strip().lower() == "folder" else file_problem
        return check(rest.strip(), "Data set"), ""
    key = canonical(name)
    if key == data_mod.TINY:
        return "", ""
    if key not in SETS:
        return (f"unknown data set '{name}': use one of {', '.join(data_mod.dataset_names())}, "
                "folder:PATH or arrays:PATH"), ""
    if data_dir:
        problem = folder_problem(data_dir, "Data folder")
        if problem:
            return problem, ""
    where = data_mod.find_dataset(key, data_dir or None)
    if where is None:
        fetch = " or press Download" if data_download.downloadable(key) else ""
        searched = ", ".join(str(d) for d in data_mod.search_dirs(data_dir or None))
        return f"{SETS[key].title} not found: choose its folder as Data folder{fetch} (searched {searched})", ""
    return "", str(where)


def downloadable(name: str) -> str:
    """The set's key when `name` is a named set that can be fetched, else ''."""
    key = canonical(name)
    return key if key in SETS and data_download.downloadable(key) else ""


def python_names(path: str) -> list[str]:
    """The module-level classes and functions of a Python file, read with `ast` (parsing runs none of
    it); subclasses of something called Module first."""
    p = Path(path)
    try:
        tree = ast.parse(p.read_text(encoding="utf-8"), filename=p.name)
    except SyntaxError as exc:
        raise WorkbenchError(f"{p.name} does not parse: line {exc.lineno}: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"cannot read {p.name}: {getattr(exc, 'strerror', None) or exc}") from None
    modules, others = [], []
    for node in tree.body:
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or node.name.startswith("_"):
            continue
        if isinstance(node, ast.ClassDef):
            is_module = any(ast.unparse(b).rsplit(".", 1)[-1] == "Module" for b in node.bases)
            (modules if is_module else others).append(node.name)
        else:
            others.append(node.name)
    return modules + others


def checkpoint_code(path: str) -> str:
    """'' when the checkpoint loads without running code, else what would run (one line). Reads the file's
    headers and pickle opcodes only (models._sniff): nothing in it runs."""
    p = Path(path)
    kind = sniff(p)
    if kind == "torchscript":
        return f"{p.name} is TorchScript: loading it runs the code stored in it"
    if kind in ("torch.save", "pickle"):
        culprit = code_globals(p, kind, Exception(""))
        if culprit:
            return f"{p.name} holds pickled Python objects ({culprit}): loading it runs their code"
    return ""
