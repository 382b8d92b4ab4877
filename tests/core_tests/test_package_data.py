"""What the wheel (and the desktop bundle, which collects the installed package's data) ships besides code,
read from pyproject.toml by setuptools' own configuration reader, without building: the presets, the app
icon, and the hashed layers' native kernel source (compiled on the user's machine on first use; without
it the kernel silently falls back to PyTorch code everywhere)."""

from __future__ import annotations

import struct
from pathlib import Path

from setuptools import find_packages
from setuptools.config.pyprojecttoml import read_configuration

from workbench.gui.app import icon_path  # imports no Qt: the app imports it when it starts
from workbench.models.hashed import kernel

ROOT = Path(__file__).resolve().parents[2]


def config() -> dict:
    return read_configuration(ROOT / "pyproject.toml")["tool"]["setuptools"]


def shipped() -> set[str]:
    """Paths inside the wheel of the package data files, as setuptools' build_py selects them: for each
    package it builds, its folder (package-dir) globbed with its package-data patterns ('*': every package)."""
    cfg = config()
    folders, data = cfg.get("package-dir", {}), cfg.get("package-data", {})
    out = set()
    for package in cfg["packages"]:
        folder = ROOT / folders.get(package, package.replace(".", "/"))
        for pattern in [*data.get("*", []), *data.get(package, [])]:
            out |= {f"{package.replace('.', '/')}/{p.relative_to(folder).as_posix()}"
                    for p in folder.glob(pattern) if p.is_file()}
    return out


def test_wheel_ships_presets_icon_and_kernel_source():
    assert "workbench.resources" in config()["packages"], (
        "resources/ (presets, icon) is not among the packages setuptools builds: the wheel would have no "
        "presets; name it in pyproject's [tool.setuptools] packages (packages.find cannot see it)")
    files = shipped()
    presets = {f"workbench/resources/presets/{p.name}" for p in (ROOT / "resources" / "presets").glob("*.json")}
    assert presets and presets <= files, "presets missing from the wheel: " + ", ".join(sorted(presets - files))
    assert {"workbench/resources/icons/workbench.png", "workbench/resources/icons/workbench.svg"} <= files
    # the file the kernel module reads, under the name it has in the installed package
    assert kernel.SOURCE.resolve().relative_to(ROOT).as_posix() in files


def test_every_package_of_the_source_tree_is_built():
    found = set(find_packages(where=str(ROOT), include=["workbench*"]))
    assert found and found <= set(config()["packages"]), sorted(found - set(config()["packages"]))


def test_icon_is_a_256px_png_and_the_app_finds_it():
    data = (ROOT / "resources" / "icons" / "workbench.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (256, 256)
    path = icon_path()
    assert path is not None and path.read_bytes() == data
