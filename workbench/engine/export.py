"""Export a finished run's model: `dense` (safetensors + JSON), `compact` (the small format whose size the
accounting predicts) and `onnx`.

Compact file layout (little-endian):
    b"CWBC" | u8 version | u32 header length | zlib(JSON header) | payload
The header names the architecture and, per tensor, its encoding, shape, decoder facts and the byte
ranges of its arrays in the payload. The payload is exactly the arrays the accounting counted (packed
relative indices, values), so its size is `bits / 8` up to byte rounding per array; the header is the
fixed overhead on top. The header holds `payload_crc32` (zlib.crc32 of the payload), checked before
decoding; the zlib stream of the header carries its own Adler-32, which decompressing checks. Files from
before the CRC field load without the check. Nothing in the file is executable: loading it never runs
code from it.

Every format is written to a temporary file in the target's folder and renamed onto the target only when
complete, so a failed export (a full disk, an error in the exporter) leaves no partial file and an older
file at the target as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import uuid
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.core import params as P
from workbench.core.accounting import account
from workbench.core.config import RunConfig
from workbench.core.decoding import companions
from workbench.core.encoding import decode
from workbench.core.errors import CheckpointError, WorkbenchError
from workbench.core.store import read_model
from workbench.engine.onnx_qdq import fold_weight_quantization
from workbench.methods import get_method
from workbench.models import architecture, quantized, structure, zoo
from workbench.models.checkpoint import nonfinite

MAGIC = b"CWBC"
VERSION = 1          # codebook and Huffman encodings are new encoding names, not a new container
FORMATS = ("compact", "dense", "onnx", "pt2")
SUFFIXES = {"compact": ".cwbc", "dense": ".safetensors", "onnx": ".onnx", "pt2": ".pt2"}


@dataclass
class ExportResult:
    path: Path
    size_bytes: int
    accounted_bytes: float       # bits / 8 from the accounting
    header_bytes: int = 0
    extra_paths: tuple[Path, ...] = ()


def _rebuild(run_path: str | os.PathLike, trust_code: bool = False) -> tuple[nn.Module, dict, RunConfig]:
    """The run's final model: its architecture built again (a zoo key, or the model file the run named:
    a graph, or Python code only with the opt-in, asked again here rather than taken from the file), the
    replaced layers replayed, the stored weights loaded."""
    if Path(run_path).is_dir():        # HDF5's own message for this runs over several lines
        raise WorkbenchError(f"{run_path} is a folder, not a run file")
    state, attrs = read_model(run_path)
    config = _stored_config(attrs, run_path)
    try:              # a damaged file's attributes are one line here, not a traceback from deeper down
        sizes = [int(v) for v in attrs["input_shape"]] + [int(attrs["num_classes"])]
        if not len(sizes) > 1 or min(sizes) < 1:
            raise ValueError(f"input shape {sizes[:-1]}, {sizes[-1]} classes")
        _arch(attrs)                                   # what every export writes about the architecture
    except (ValueError, KeyError, TypeError) as exc:
        raise WorkbenchError(f"{run_path} is damaged: its model attributes cannot be read "
                             f"({type(exc).__name__}: {exc})".splitlines()[0]) from None
    model = _fresh(attrs, trust_code)
    key = attrs.get("model_key") or attrs.get("model_spec")
    if attrs.get("structure"):
        structure.apply_structure(model, attrs["structure"])
    try:
        model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    except RuntimeError as exc:
        raise CheckpointError(f"{run_path}: the stored model does not fit {key} "
                              f"({str(exc).splitlines()[1].strip() if chr(10) in str(exc) else exc})") from None
    return model.eval(), attrs, config


def _stored_config(attrs: dict, run_path) -> RunConfig:
    """The run's config as the file stores it: JSON of an object with at least one stage."""
    text = attrs.get("config")
    try:
        d = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        raise WorkbenchError(f"{run_path} is damaged: its stored run config is not valid JSON") from None
    if not isinstance(d, dict) or not isinstance(d.get("stages"), list) or not d["stages"]:
        raise WorkbenchError(f"{run_path} is damaged: its stored run config is not a run's config "
                             "(an object with a list of stages)")
    try:
        return RunConfig.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise WorkbenchError(f"{run_path} is damaged: its stored run config cannot be read "
                             f"({type(exc).__name__}: {exc})".splitlines()[0]) from None


def _fresh(attrs: dict, trust_code: bool = False) -> nn.Module:
    """The run's architecture as it was before compression: a zoo model, or the model file the run named
    built again (a graph; Python code only with the opt-in, asked here rather than taken from the file)."""
    key, spec = attrs.get("model_key"), attrs.get("model_spec")
    shape, classes = tuple(int(v) for v in attrs["input_shape"]), int(attrs["num_classes"])
    if key:
        return zoo.build_model(key, shape, classes)
    if spec:
        return architecture.build(architecture.parse_model_spec(spec), shape, classes, allow_code=trust_code).module
    raise WorkbenchError("this run's model was loaded from a pickled module, so it cannot be rebuilt for "
                         "export; bring it as a .pt2, an ONNX file or FILE.py:NAME")


def _final_method(config: RunConfig):
    stage = config.stages[-1]
    cls = get_method(stage.method)
    return cls(P.build(cls.Params, stage.params))


def export_run(run_path: str | os.PathLike, fmt: str, out: str | os.PathLike,
               huffman: bool | None = None, trust_code: bool = False) -> ExportResult:
    """Write a run's model; `huffman` None follows the run's own setting, so the file matches the
    storage ratio the run reported."""
    if fmt not in FORMATS:
        raise WorkbenchError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    model, attrs, config = _rebuild(run_path, trust_code)
    problem = nonfinite(model.state_dict())
    if problem:           # other runtimes would load such a file without a word; say it here instead
        raise WorkbenchError(f"{problem}; nothing written")
    out = Path(out)
    for target in (out, out.with_suffix(".json")) if fmt == "dense" else (out,):
        if target.is_dir():       # found now, not when renaming, so the dense sidecar is not left behind
            raise WorkbenchError(f"cannot write {target}: it is a folder; give a file name such as "
                                 f"{target / ('model' + SUFFIXES[fmt])}")
    if fmt == "onnx":
        _need_onnx()
    try:
        if out.parent.exists() and not out.parent.is_dir():    # mkdir would say only "File exists"
            raise WorkbenchError(f"cannot write {out}: {out.parent} is a file, not a folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "compact":
            return write_compact(model, _final_method(config), attrs, out,
                                 config.huffman if huffman is None else huffman)
        if fmt == "dense":
            return write_dense(model, attrs, out)
        if fmt == "pt2":
            return write_pt2(_materialised(model, attrs, trust_code), attrs, out)
        return write_onnx(_materialised(model, attrs, trust_code), attrs, out)
    except OSError as exc:
        raise WorkbenchError(f"cannot write {out}: {exc.strerror or exc}") from None


def _arch(attrs: dict) -> dict:
    spec = {"model_spec": attrs["model_spec"]} if attrs.get("model_spec") else {}    # a user's model file
    return {"model": attrs["model_key"], **spec, "input_shape": [int(v) for v in attrs["input_shape"]],
            "num_classes": int(attrs["num_classes"]), "mean": [float(v) for v in attrs.get("mean", [])],
            "std": [float(v) for v in attrs.get("std", [])]}


def _structure_header(model: nn.Module) -> dict:
    """The thinner / factorised layers a compact file holds, replayed by `load_compact` (absent for a
    plain architecture, so such files read exactly as before)."""
    spec = structure.structure_of(model)
    return {"structure": spec} if spec else {}


@contextmanager
def _atomic(*outs: Path):
    """Temporary paths (one per target) that become the targets only when the block completes; on any
    failure they are removed and each target, an older file there included, stays as it was. Each lies in
    a hidden folder inside its target's folder (the same file system, so os.replace is atomic) under the
    target's own name, which writers may record (a .pt2 archive names its root folder after the file).
    Yields the one path for one target, else the list. Several targets are renamed in order; should a
    later rename fail, the earlier ones are undone (an older file comes back from a hard link or copy)."""
    dirs: list[Path] = []
    try:
        for out in outs:
            dirs.append(out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
            dirs[-1].mkdir()
        tmps = [d / out.name for d, out in zip(dirs, outs)]
        yield tmps[0] if len(tmps) == 1 else tmps
        done: list[tuple[Path, Path | None]] = []        # (target, its older file kept aside, or None)
        try:
            for out, d, tmp in zip(outs, dirs, tmps):
                older = None
                if len(outs) > 1 and os.path.isfile(out):
                    older = d / ".older"
                    _keep(out, older)
                os.replace(tmp, out)
                done.append((out, older))
        except BaseException:
            for out, older in reversed(done):
                if older is None:
                    out.unlink(missing_ok=True)
                else:
                    os.replace(older, out)
            raise
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def _keep(path: Path, copy: Path) -> None:
    """A copy of `path`'s bytes at `copy`: a hard link where the file system has them."""
    try:
        os.link(path, copy)
    except OSError:
        shutil.copy2(path, copy)


def _write_parts(path: Path, *parts: bytes | bytearray) -> None:
    with open(path, "xb") as f:
        f.writelines(parts)


def write_compact(model: nn.Module, method, attrs: dict, out: Path, huffman: bool = False) -> ExportResult:
    encoded = method.encode(model, huffman=huffman)
    report = account(encoded)
    payload = bytearray()
    tensors = []
    for e in encoded:
        arrays = {}
        for name, arr in e.arrays.items():
            raw = np.ascontiguousarray(arr).tobytes()
            arrays[name] = [len(payload), len(raw), str(arr.dtype)]
            payload += raw
        tensors.append({"name": e.name, "encoding": e.encoding, "shape": list(e.shape), "info": e.info,
                        "arrays": arrays})
    header = zlib.compress(json.dumps({**_arch(attrs), **_structure_header(model), "tensors": tensors,
                                       "payload_crc32": zlib.crc32(payload)},
                                      separators=(",", ":")).encode(), 9)
    with _atomic(out) as tmp:
        _write_parts(tmp, MAGIC + struct.pack("<BI", VERSION, len(header)) + header, payload)
    return ExportResult(out, out.stat().st_size, report.bits / 8, header_bytes=len(header) + 9)


def read_compact(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """(architecture header, state_dict) of a compact file; raises CheckpointError on anything odd."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if blob[:4] != MAGIC:
        raise CheckpointError(f"{path} is not a compact workbench checkpoint")
    try:
        version, length = struct.unpack("<BI", blob[4:9])
        if version != VERSION:
            raise CheckpointError(f"{path} has compact format version {version}; this build reads {VERSION}")
        header = json.loads(zlib.decompress(blob[9:9 + length]))      # zlib checks the header's Adler-32
        payload = memoryview(blob)[9 + length:]
        crc = header.get("payload_crc32")
        if crc is not None and zlib.crc32(payload) != crc:                # absent in older files: no check
            raise CheckpointError(f"{path} is damaged: checksum mismatch")
        state = {}
        for t in header["tensors"]:
            arrays = {}
            for name, (offset, nbytes, dtype) in t["arrays"].items():
                if min(offset, nbytes) < 0 or offset + nbytes > len(payload):
                    raise CheckpointError(f"{path} is truncated")
                arrays[name] = np.frombuffer(payload[offset:offset + nbytes], dtype=np.dtype(dtype))
            try:
                value = decode(t["info"], tuple(t["shape"]), t["encoding"], arrays)
                extra = companions(t["info"], tuple(t["shape"]), t["encoding"], arrays)   # an int8 layer's scales
            except CheckpointError as exc:       # the decoder's own word on what is out of place
                raise CheckpointError(f"{path} is damaged: {t['name']}: {exc}") from None
            state[t["name"]] = torch.from_numpy(value.copy())
            state.update({k: torch.from_numpy(v.copy()) for k, v in extra.items()})
        return header, state
    # A file without the CRC (or a damaged header that still inflates) reaches the decoder with whatever
    # it holds: out-of-range indices and sizes are damage too, not bugs.
    except (ValueError, KeyError, TypeError, IndexError, OverflowError, MemoryError, AttributeError,
            zlib.error, struct.error) as exc:
        raise CheckpointError(f"{path} is damaged ({type(exc).__name__})") from None


def load_compact(path: str | os.PathLike, trust_code: bool = False) -> nn.Module:
    """Rebuild the model from a compact file (zeros and shared values materialised; low-rank factors
    and thinner layers as the stock modules the run ended with). A user's architecture is built again
    from the model file the header names (a graph; Python code only with the opt-in)."""
    header, state = read_compact(path)
    model = _fresh({"model_key": header["model"], "model_spec": header.get("model_spec"),
                    "input_shape": header["input_shape"], "num_classes": header["num_classes"]}, trust_code)
    if header.get("structure"):
        structure.apply_structure(model, header["structure"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Integer buffers (a graph's shape constants, BatchNorm's step counter) are not needed for inference
    # and are not stored (storage.encode_state): the freshly built architecture already holds them.
    own = model.state_dict()
    missing = [k for k in missing if own[k].is_floating_point()]
    if missing or unexpected:
        what = header.get("model_spec") or header["model"]
        raise CheckpointError(f"{path} does not fit {what}: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}")
    return model.eval()


def write_dense(model: nn.Module, attrs: dict, out: Path) -> ExportResult:
    """A plain float state dict (safetensors) and its JSON sidecar. A thinned model (channels or units
    removed, nothing else: `structure.thinned_only`) is written at its thinner shapes, with the structure
    in the sidecar for the loader (models/checkpoint.py) to apply first: exact and smaller. Factorised
    and hashed layers are multiplied out to the original architecture's shapes. int8 layers are written
    as their dequantized weights (plain floats on the int8 grid) in float layers: their inputs are not
    quantized there (the compact and ONNX exports keep that)."""
    from safetensors.torch import save_file

    spec = structure.structure_of(model)
    meta = {"format": "compression-workbench/dense", **_arch(attrs)}
    if structure.thinned_only(spec):
        state = quantized.strip_buffers(model.state_dict(), model)
        meta["structure"] = structure.float_spec(spec)
        params = sum(p.numel() for p in model.parameters())
    else:
        state = structure.dense_state_dict(model)
        params = structure.dense_param_count(model)
    if quantized.quantized_modules(model):
        meta["int8"] = "weights on the int8 grid as floats; layer inputs not quantized in this form"
    state = {k: v.detach().contiguous() for k, v in state.items()}
    sidecar = out.with_suffix(".json")
    # Both are complete before either is renamed (the sidecar first): a failure leaves both as they were.
    with _atomic(sidecar, out) as (tmp_sidecar, tmp):
        save_file(state, str(tmp))
        _write_parts(tmp_sidecar, json.dumps(meta, indent=1).encode())
    return ExportResult(out, out.stat().st_size, params * 32 / 8, extra_paths=(sidecar,))


def _materialised(model: nn.Module, attrs: dict, trust_code: bool = False) -> nn.Module:
    """Hashed layers multiplied out into the plain architecture: other runtimes get stock layers (the
    virtual weights come from workbench code, which an ONNX graph cannot call)."""
    if structure.hashed_spec(model) is None:
        return model
    plain = _fresh(attrs, trust_code)
    plain.load_state_dict(structure.dense_state_dict(model))
    return plain.eval()


def write_pt2(model: nn.Module, attrs: dict, out: Path) -> ExportResult:
    """A torch.export archive that stock `torch.export.load` opens (and the workbench's safe loader
    too): the compressed model's graph with its weights, batch size free where the model allows it."""
    from torch.export import Dim, export, save

    dummy = torch.zeros((2, *attrs["input_shape"]))
    model = model.eval()
    try:
        program = export(model, (dummy,), dynamic_shapes=({0: Dim("batch", min=1)},))
    except Exception:  # noqa: BLE001 - a model with fixed sizes in its code: export at batch 2 as it is
        program = export(model, (dummy,))
    with _atomic(out) as tmp:
        if tmp.suffix == ".pt2":
            save(program, str(tmp))
        else:                   # an open file: torch would log a warning for a name without .pt2
            with open(tmp, "xb") as f:
                save(program, f)
    dense_bits = sum(v.numel() for v in model.parameters()) * 32
    return ExportResult(out, out.stat().st_size, dense_bits / 8)


def _need_onnx() -> None:
    """torch's exporter imports onnx only part-way through (then raises its own multi-line error)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise WorkbenchError("ONNX export needs the onnx package: pip install onnx") from None


def write_onnx(model: nn.Module, attrs: dict, out: Path) -> ExportResult:
    """The model as an ONNX graph; int8 layers become QDQ: QuantizeLinear / DequantizeLinear around each
    weight (per channel, int8) and each quantized input (uint8), which ONNX Runtime runs as int8 (per-axis
    QDQ needs opset 13; torch's default opset is above it)."""
    _need_onnx()
    dummy = torch.zeros((1, *attrs["input_shape"]))
    with _atomic(out) as tmp:
        torch.onnx.export(model, (dummy,), str(tmp), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
        if quantized.quantized_modules(model):
            fold_weight_quantization(tmp)          # int8 weights on disk, not fp32 ones and a QuantizeLinear
    dense_bits = sum(v.numel() for v in model.parameters()) * 32
    return ExportResult(out, out.stat().st_size, dense_bits / 8)
