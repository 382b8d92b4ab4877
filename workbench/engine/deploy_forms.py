"""The forms a finished run's model can be deployed in, each written to a file and loaded back from it.

Every form is run from its own file, the way a deployment would run it: `RunForms.write(name)` writes it
(its size is the form's size on disk), `RunForms.load(name, device)` builds a callable from that file
alone plus the run's architecture. The memory probe (deploy_memory.py) loads the same files in a fresh
process, so what it measures is what loading and running each file costs.

Forms (CPU names; on CUDA the same with "@cuda"):
    reference         the uncompressed model the run started from (the baseline of every speed-up)
    dense             the run's final weights materialised into the original architecture, stock PyTorch
    lowrank/thinned   the run's own replaced layers (factorised / with units removed): stock modules
    hashed            hashed layers (native kernel on CPU), virtual weights kept after the first call
    hashed-regen      the same, virtual weights recomputed on every call (only the buckets stay resident)
    csr               pruned layers as torch.sparse_csr matmuls (conv: unfold) where that is faster for the
                      layer, as `csr_plan` measured (deploy_csr.py); without a plan every candidate
    onnxruntime       the ONNX export (engine/export.write_onnx) in onnxruntime
    onnxruntime-int8  its dynamic int8 quantization (onnxruntime.quantization.quantize_dynamic)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from workbench.core.errors import WorkbenchError
from workbench.engine import export
from workbench.engine.deploy_csr import (  # noqa: F401 - CsrLinear, CsrConv2d, to_csr: this module's API too
    CsrConv2d,
    CsrLinear,
    csr_candidates,
    csr_tensor,
    matrix_shape,
    to_csr,
)
from workbench.models import structure
from workbench.models.hashed import layers as hashed_layers

GENERIC = ("reference", "dense", "onnxruntime", "onnxruntime-int8")


@dataclass
class Form:
    name: str
    runtime: str                                   # "pytorch" | "onnxruntime"
    device: str                                    # "cpu" | "cuda"
    description: str
    call: Callable[[torch.Tensor], torch.Tensor]   # a batch on `device` -> logits on `device`
    module: nn.Module | None = None
    session: object | None = None                  # an onnxruntime form's InferenceSession

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.call(x)


def onnxruntime_available() -> str | None:
    """None when ONNX export and onnxruntime can run here, else why not."""
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install {module})"
    return None


def ort_session(path: Path, threads: int, device: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3                   # its warnings about unused initializers are not ours
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), opts, providers=providers)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def _clear_hashed(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, hashed_layers.HashedLayer):
            m.clear_caches()


class RunForms:
    """A finished run's model (rebuilt as export rebuilds it), its reference and its forms' files in
    `folder` (the caller's temporary folder)."""

    def __init__(self, run_path, folder, *, trust_code: bool = False, reference: nn.Module | None = None):
        self.run_path, self.folder, self.trust_code = str(run_path), Path(folder), trust_code
        self.model, self.attrs, self.config = export._rebuild(run_path, trust_code)
        self.reference = reference          # None: the architecture, freshly initialised (timing only)
        self.spec = structure.structure_of(self.model)
        self.threads = torch.get_num_threads()
        # deploy_csr.plan's result: {layer: {"density", "ratio", "form"}}; None: every candidate goes CSR
        self.csr_plan: dict[str, dict] | None = None

    def csr_layers(self) -> dict[str, float]:
        """Layer -> density of the layers the csr form holds as CSR: those the plan found faster so."""
        candidates = csr_candidates(self.model)
        if self.csr_plan is None:
            return candidates
        return {k: v for k, v in candidates.items() if self.csr_plan.get(k, {}).get("form") == "csr"}

    # --- which forms ----------------------------------------------------------------------------------
    def own_form(self) -> str | None:
        """The run's own PyTorch form where its layers were replaced: lowrank, thinned or hashed."""
        if self.spec is None:
            return None
        if "hashing" in self.spec:
            return "hashed"
        if self.spec.get("quantized"):      # int8 layers (over any factorised or thinned ones)
            return "int8"
        ranked = any(e.get("rank") is not None for e in self.spec["layers"].values())
        return "lowrank" if ranked else "thinned"

    def candidates(self) -> list[str]:
        """The CPU forms this run can take: the generic ones, and its own where it has them."""
        names = ["reference", "dense"]
        own = self.own_form()
        if own:
            names += [own] + (["hashed-regen"] if own == "hashed" else [])
        if csr_candidates(self.model):
            names.append("csr")
        if onnxruntime_available() is None:
            # an int8 run's ONNX export is int8 already (QDQ): quantizing it again is no baseline, and
            # onnxruntime's dynamic quantizer refuses its convolutions (weights behind DequantizeLinear)
            names += ["onnxruntime"] + (["onnxruntime-int8"] if own != "int8" else [])
        return names

    def describe(self, name: str) -> str:
        if name == "csr":
            layers = ", ".join(f"{k} {v:.0%}" for k, v in self.csr_layers().items()) or "none"
            if self.csr_plan is None:
                return f"sparse CSR matmuls for every pruned layer ({layers})"
            return f"sparse CSR matmuls where they were faster for the layer on the CPU ({layers}; the rest dense)"
        if name == "onnxruntime" and self.own_form() == "int8":
            return "the ONNX export (int8 weights and inputs as QuantizeLinear / DequantizeLinear) in onnxruntime"
        return {"reference": "the uncompressed model the run started from",
                "dense": "final weights materialised in the original architecture",
                "lowrank": "the run's factorised layers", "thinned": "the run's thinned layers",
                "int8": "the run's int8 layers (fake-quantized in PyTorch; replaced layers kept)",
                "hashed": "hashed layers, virtual weights kept after the first call",
                "hashed-regen": "hashed layers, virtual weights recomputed every call",
                "onnxruntime": "the ONNX export in onnxruntime (replaced layers kept, hashed ones multiplied "
                               "out)",
                "onnxruntime-int8": "its dynamic int8 quantization (weights int8, activations quantized "
                                    "per batch)"}[name]

    # --- files ------------------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        base = {"hashed-regen": "hashed", "onnxruntime": "model", "onnxruntime-int8": "model.int8"}.get(name, name)
        return self.folder / (base + (".onnx" if name.startswith("onnxruntime") else ".safetensors"))

    def write(self, name: str) -> int:
        """Write the form's file (once; hashed-regen shares hashed's); returns its size in bytes."""
        from safetensors.torch import save_file

        path = self.path(name)
        if path.exists():
            return path.stat().st_size
        if name == "onnxruntime":
            export.write_onnx(export._materialised(self.model, self.attrs, self.trust_code), self.attrs, path)
        elif name == "onnxruntime-int8":
            from onnxruntime.quantization import quantize_dynamic

            self.write("onnxruntime")
            logging.disable(logging.WARNING)      # it advises pre-processing on the root logger, every call
            try:
                quantize_dynamic(str(self.path("onnxruntime")), str(path))
            finally:
                logging.disable(logging.NOTSET)
        else:
            state, meta = self._state(name)
            save_file({k: v.detach().contiguous() for k, v in state.items()}, str(path), metadata=meta)
        return path.stat().st_size

    def _state(self, name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        if name == "reference":
            source = self.reference if self.reference is not None else export._fresh(self.attrs, self.trust_code)
            return source.state_dict(), {}
        if name == "dense":
            return structure.dense_state_dict(self.model), {}
        if name in ("lowrank", "thinned", "int8", "hashed", "hashed-regen"):
            return self.model.state_dict(), {}
        if name == "csr":
            state = self.model.state_dict()
            layers = self.csr_layers()
            for layer in layers:
                csr = to_csr(state.pop(f"{layer}.weight").reshape(state_shape(self.model, layer)))
                state.update({f"{layer}.weight.crow": csr.crow_indices(), f"{layer}.weight.col": csr.col_indices(),
                              f"{layer}.weight.values": csr.values()})
            return state, {"csr_layers": json.dumps(sorted(layers))}
        raise WorkbenchError(f"unknown deployment form {name!r}")

    # --- loading ----------------------------------------------------------------------------------------
    def load(self, name: str, device: str = "cpu", threads: int | None = None) -> Form:
        """The form built from its file alone (written before) and the run's architecture."""
        threads = threads or torch.get_num_threads()
        label = name if device == "cpu" else f"{name}@{device}"
        if name.startswith("onnxruntime"):
            session = ort_session(self.path(name), threads, device)

            def run(x: torch.Tensor) -> torch.Tensor:
                return torch.from_numpy(session.run(None, {"input": x.detach().cpu().numpy()})[0]).to(x.device)
            return Form(label, "onnxruntime", device, self.describe(name), run, session=session)
        from safetensors.torch import load_file, safe_open

        state = load_file(str(self.path(name)))
        model = export._fresh(self.attrs, self.trust_code)
        if self.spec is not None and name not in ("reference", "dense"):
            structure.apply_structure(model, self.spec)
        if name == "csr":
            with safe_open(str(self.path(name)), "pt") as f:
                layers = json.loads(f.metadata()["csr_layers"])
            for layer in layers:
                old = model.get_submodule(layer)
                parts = [state.pop(f"{layer}.weight.{p}") for p in ("crow", "col", "values")]
                weight = csr_tensor(*parts, state_shape(model, layer))
                bias = state.pop(f"{layer}.bias", None)
                _replace(model, layer, CsrLinear(weight, bias) if isinstance(old, nn.Linear)
                         else CsrConv2d(old, weight, bias))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not _replaced(model, k)]:
            raise WorkbenchError(f"the {name} form's file does not fit the run's model ({(missing + unexpected)[:3]})")
        model = model.to(device).eval()
        call: Callable = model
        if name == "hashed-regen":
            def call(x: torch.Tensor, model=model) -> torch.Tensor:
                _clear_hashed(model)             # the virtual weights are made again in this call
                return model(x)
        return Form(label, "pytorch", device, self.describe(name), call, model)


def state_shape(model: nn.Module, layer: str) -> tuple[int, int]:
    """A layer's weight as the 2-D matrix its CSR form multiplies (conv: out x C k k)."""
    return matrix_shape(model.get_submodule(layer))


def _replaced(model: nn.Module, key: str) -> bool:
    """A state key that belongs to a CSR layer (its tensors came from the file's CSR arrays)."""
    owner = key.rpartition(".")[0]
    try:
        return isinstance(model.get_submodule(owner), (CsrLinear, CsrConv2d))
    except AttributeError:
        return False

