"""What `--model` names: a zoo key, a graph file (torch.export `.pt2`, ONNX), or a Python definition
(`FILE.py:NAME`), and how each becomes a trainable module.

    parse_model_spec("resnet20")             zoo architecture (built fresh; pretrained by the engine)
    parse_model_spec("net.pt2")              torch.export graph, read without running it (pt2_graph)
    parse_model_spec("net.onnx")             ONNX graph, protobuf only (onnx_graph)
    parse_model_spec("arch.py:ResNet18")     a class or a function in a Python file: runs the user's code,
                                             so only with the opt-in (allow_code: --trust-code)

A graph file carries its weights, so it is already a trained model; a zoo model or a Python definition
starts from fresh weights unless a checkpoint is given. The same spec rebuilds the architecture for
export, so a run file names it (attribute `model_spec`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from workbench.core.errors import CheckpointError, WorkbenchError
from workbench.models import zoo

CODE_HINT = "opt in with --trust-code (the app's \"Allow code\" box) only if you trust its source"
GRAPH_SUFFIXES = {".pt2": "torch.export", ".onnx": "onnx"}


@dataclass(frozen=True)
class Architecture:
    spec: str             # as given
    kind: str             # "zoo" | "torch.export" | "onnx" | "python"
    path: Path | None = None
    name: str = ""        # the zoo key, or NAME in FILE.py:NAME

    @property
    def runs_code(self) -> bool:
        return self.kind == "python"

    @property
    def label(self) -> str:
        return self.name if self.kind == "zoo" else f"{self.path.name}" + (f":{self.name}" if self.name else "")

    def digest(self) -> str:
        """Identifies the architecture's file contents (cache keys of pretrained references)."""
        if self.path is None:
            return self.name
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16] + (f":{self.name}" if self.name else "")


@dataclass
class BuiltModel:
    module: nn.Module
    input_shape: tuple[int, ...] | None    # what the model itself says it takes (one sample), if it says
    num_classes: int | None
    pretrained: bool                       # the file carried trained weights (a graph)


def is_model_file(spec: str) -> bool:
    """Whether `--model` names a file rather than a zoo key."""
    return spec not in zoo.model_keys() and (spec.endswith(tuple(GRAPH_SUFFIXES)) or ".py:" in spec
                                             or "/" in spec or spec.endswith(".py"))


def parse_model_spec(spec: str) -> Architecture:
    spec = (spec or "").strip()
    if not spec:
        raise WorkbenchError("no model given: a zoo key, a .pt2 / .onnx file, or FILE.py:NAME")
    if spec in zoo.model_keys():
        return Architecture(spec, "zoo", name=spec)
    file, sep, name = spec.rpartition(":")
    if sep and file.endswith(".py"):
        path = Path(file).expanduser()
        if not name.isidentifier():
            raise WorkbenchError(f"{spec}: NAME must be a Python name (a class or a function in {path.name})")
        if not path.is_file():
            raise WorkbenchError(f"{spec}: no such file {path}")
        return Architecture(spec, "python", path, name)
    if spec.endswith(".py"):
        raise WorkbenchError(f"{spec}: name the class or function to build, as {spec}:NAME")
    path = Path(spec).expanduser()
    kind = GRAPH_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise WorkbenchError(f"unknown model {spec!r}: use a zoo key ({', '.join(zoo.model_keys())}), a .pt2 "
                             "or .onnx file, or FILE.py:NAME")
    if not path.is_file():
        raise WorkbenchError(f"{spec}: no such file")
    return Architecture(spec, kind, path)


def build(arch: Architecture, input_shape, num_classes: int, *, allow_code: bool = False) -> BuiltModel:
    """A fresh module of the architecture (for a graph: with the weights it carries)."""
    if arch.kind == "zoo":
        return BuiltModel(zoo.build_model(arch.name, input_shape, num_classes), tuple(input_shape),
                          num_classes, False)
    if arch.kind == "python":
        if not allow_code:
            raise CheckpointError(f"{arch.label} is Python code: building the model runs it; {CODE_HINT}")
        return BuiltModel(_from_python(arch, tuple(input_shape), num_classes), None, None, False)
    if arch.kind == "torch.export":
        from workbench.models.pt2_graph import load_pt2_model as load
    else:
        from workbench.models.onnx_graph import load_onnx_model as load
    graph = load(arch.path, arch.path.name)
    return BuiltModel(graph.module, tuple(graph.input_shape) if graph.input_shape else None, graph.num_outputs,
                      True)


def _from_python(arch: Architecture, input_shape: tuple, num_classes: int) -> nn.Module:
    """Import FILE.py as its own module (not on sys.path, so it shadows nothing) and call NAME, passing
    the data set's `input_shape` / `num_classes` where its signature names them."""
    module_name = f"workbench_user_{hashlib.sha256(str(arch.path.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, arch.path)
    if spec is None or spec.loader is None:
        raise CheckpointError(f"{arch.label}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module          # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's code: report its first line, keep the app up
        sys.modules.pop(module_name, None)
        raise CheckpointError(f"{arch.path.name} failed to run: {_line(exc)}") from None
    factory = getattr(module, arch.name, None)
    if not callable(factory):
        names = sorted(n for n, v in vars(module).items() if not n.startswith("_") and _is_model_factory(v))
        raise CheckpointError(f"{arch.path.name} has no class or function {arch.name!r}"
                              + (f"; it defines {', '.join(names)}" if names else ""))
    kwargs = {}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    for key, value in (("input_shape", input_shape), ("num_classes", num_classes)):
        if key in params:
            kwargs[key] = value
    try:
        model = factory(**kwargs)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{arch.label} failed to build: {_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"{arch.label} gave a {type(model).__name__}, not a torch.nn.Module")
    return model


def _is_model_factory(value) -> bool:
    return (inspect.isclass(value) and issubclass(value, nn.Module)) or inspect.isfunction(value)


def _line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"


def check_fits(model: nn.Module, input_shape: tuple, num_classes: int, dataset_name: str, what: str,
               declared_shape: tuple | None = None) -> None:
    """One line when the model does not take the data set's samples or predicts another number of
    classes, naming both shapes (asked before any run file exists)."""
    if declared_shape is not None and tuple(declared_shape) != tuple(input_shape):
        raise CheckpointError(f"{what} takes inputs of shape {tuple(declared_shape)} but {dataset_name} has "
                              f"{tuple(input_shape)}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros((2, *input_shape), device=device)
    was_training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:  # noqa: BLE001 - any failure here means "does not fit"
        raise CheckpointError(f"{what} does not take {dataset_name} inputs of shape {tuple(input_shape)}: "
                              f"{_line(exc)}") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != num_classes:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckpointError(f"{what} outputs {got} for a batch of 2, but {dataset_name} has {num_classes} "
                              f"classes (expected (2, {num_classes}))")
