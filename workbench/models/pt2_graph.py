"""Load a torch.export `.pt2` archive as a trainable module without `torch.export.load`.

`torch.export.load` unpickles (weights, constants, sample inputs) and evaluates stored expressions. This
loader reads only JSON and raw tensor bytes: the archive's serialized graph (``models/<name>.json``, or
``serialized_exported_program.json`` in older layouts), the weights through `_pt2.read_pt2_state_dict`
(raw records guided by the JSON weight config; a pickled state_dict only if it passes ``weights_only``),
and lifted tensor constants as raw records. Each operator must be on the allowlist of
`graph_ops.ALLOWED`; anything else (another namespace, a custom or higher-order op, a Python callable,
pickled weights) is refused with one CheckpointError line naming it, before anything is run.

The graph becomes an `fx.GraphModule` (see `graph_ops.build_graph_module`) in which linear, convolution,
batch norm, layer norm, embedding and dropout calls are real `nn` modules at the original paths, so the
state_dict keys are the original model's and ``train()`` / ``eval()`` switch batch norm and dropout.
A model exported in eval mode keeps its dropout calls (``aten.dropout`` with ``train=False``) and they
become ``nn.Dropout`` modules again; dropout inside ``scaled_dot_product_attention`` is recorded as
``dropout_p=0`` by an eval-mode export and stays off.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from workbench.core.errors import CheckpointError
from workbench.models._pt2 import _DTYPES, NeedsCode, _root, read_pt2_state_dict
from workbench.models.graph_ops import (
    SYM_OPS,
    OpNode,
    Ref,
    StateEntry,
    build_graph_module,
    refuse_op,
    safe_path,
)

_MEMORY_FORMATS = {0: None, 1: torch.contiguous_format, 2: torch.channels_last,
                   3: torch.channels_last_3d, 4: torch.preserve_format}
_ATEN_PREFIX = "torch.ops.aten."


@dataclass
class GraphModel:
    module: nn.Module                 # trainable; parameters/buffers keep the original state_dict keys
    input_shape: tuple[int, ...] | None   # one sample's shape (no batch dim), from the graph's input spec
    input_dtype: torch.dtype          # float32 for images; int64 for token ids
    num_outputs: int | None           # width of the (single) output's last dim: the number of classes
    ops: dict[str, int]               # operator name -> count (for a layer table / diagnostics)
    source: str = "torch.export"


class _Damaged(Exception):
    pass


def _one(d: dict) -> tuple[str, object]:
    if not isinstance(d, dict) or len(d) != 1:
        raise _Damaged
    return next(iter(d.items()))


def _sym(v: dict, name: str):
    kind, val = _one(v)
    if kind == "as_name":
        return Ref(val)
    if kind in ("as_int", "as_bool", "as_float"):
        return val
    raise CheckpointError(f"{name}: a symbolic value of kind {kind} is not supported by the workbench's safe loader")


def _argument(arg: dict, name: str):
    kind, val = _one(arg)
    if kind == "as_none":
        return None
    if kind == "as_tensor":
        return Ref(val["name"])
    if kind == "as_tensors":
        return [Ref(t["name"]) for t in val]
    if kind in ("as_int", "as_float", "as_bool", "as_string"):
        if not isinstance(val, (int, float, str)):
            raise _Damaged
        return val
    if kind in ("as_ints", "as_floats", "as_bools", "as_strings"):
        if not isinstance(val, list) or not all(isinstance(x, (int, float, str)) for x in val):
            raise _Damaged
        return list(val)
    if kind in ("as_sym_int", "as_sym_bool", "as_sym_float"):
        return _sym(val, name)
    if kind in ("as_sym_ints", "as_sym_bools", "as_sym_floats"):
        return [_sym(v, name) for v in val]
    if kind == "as_scalar_type":
        if int(val) not in _DTYPES:
            raise CheckpointError(f"{name}: a data type the workbench cannot read ({val})")
        return _DTYPES[int(val)]
    if kind == "as_memory_format":
        return _MEMORY_FORMATS.get(int(val))
    if kind == "as_layout":
        return torch.strided
    if kind == "as_device":
        return torch.device("cpu") if val.get("type") == "cpu" else None
    if kind == "as_optional_tensors":
        out = []
        for t in val:
            k, v = _one(t)
            out.append(Ref(v["name"]) if k == "as_tensor" else None)
        return out
    raise CheckpointError(f"{name}: an operator argument of kind {kind} is not supported by the workbench's safe loader")


def _module_hint(meta: dict | None) -> str | None:
    stack = (meta or {}).get("nn_module_stack")
    if not isinstance(stack, str) or not stack:
        return None
    fields = stack.split(";")[-1].split(",")
    if len(fields) < 3 or "Dropout" not in fields[-1]:
        return None
    path = fields[1]
    return path if path and safe_path(path) else None


def _node(raw: dict, name: str) -> OpNode:
    target = raw["target"]
    if not isinstance(target, str):
        raise _Damaged
    if target.startswith(_ATEN_PREFIX):
        op = target[len(_ATEN_PREFIX):]
    elif target in SYM_OPS:
        op = target
    else:
        raise refuse_op(name, target)
    args, kwargs = [], {}
    for inp in raw["inputs"]:
        value = _argument(inp["arg"], name)
        if inp.get("kind", 1) == 2:
            kwargs[inp["name"]] = value
        else:
            if kwargs:
                raise _Damaged
            args.append(value)
    outs = raw["outputs"]
    names, list_output = [], False
    if len(outs) == 1 and _one(outs[0])[0] == "as_tensors":
        names, list_output = [t["name"] for t in outs[0]["as_tensors"]], True
    else:
        for o in outs:
            kind, val = _one(o)
            if kind == "as_tensor":
                names.append(val["name"])
            elif kind in ("as_sym_int", "as_sym_float", "as_sym_bool"):
                names.append(val.get("as_name"))
            elif kind == "as_none":
                names.append(None)
            else:
                raise CheckpointError(f"{name}: an operator result of kind {kind} is not supported "
                                      "by the workbench's safe loader")
    return OpNode(op, args, kwargs, names, list_output, _module_hint(raw.get("metadata")))


def _constants(zf: zipfile.ZipFile, root: str, name: str) -> dict[str, torch.Tensor]:
    """Lifted tensor constants, read as raw records; pickled ones are refused."""
    configs = [n for n in zf.namelist() if n.startswith(root + "data/constants/") and n.endswith("constants_config.json")]
    out: dict[str, torch.Tensor] = {}
    for cfg_name in configs:
        for fqn, meta in json.loads(zf.read(cfg_name))["config"].items():
            if meta.get("use_pickle"):
                raise CheckpointError(f"{name}: constant {fqn} is stored as a pickled Python object; "
                                      "the workbench does not unpickle archives (refused)")
            tm = meta["tensor_meta"]
            dtype = _DTYPES.get(int(tm["dtype"]))
            if dtype is None:
                raise CheckpointError(f"{name}: constant {fqn} has a data type the workbench cannot read")
            raw = zf.read(root + "data/constants/" + meta["path_name"])
            flat = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            sizes = [int(s["as_int"]) for s in tm["sizes"]]
            strides = [int(s["as_int"]) for s in tm["strides"]]
            out[fqn] = torch.as_strided(flat, sizes, strides, int(tm["storage_offset"]["as_int"])).clone()
    return out


def _dims(meta: dict) -> tuple[list[int | None], list[int]]:
    """Sizes as ints (None where symbolic) and a concrete example (the symbol's hint)."""
    sizes, example = [], []
    for s in meta["sizes"]:
        kind, val = _one(s)
        if kind == "as_int":
            sizes.append(int(val))
            example.append(int(val))
        else:
            sizes.append(None)
            hint = val.get("hint") if isinstance(val, dict) else None
            example.append(int(hint["as_int"]) if isinstance(hint, dict) and "as_int" in hint else 2)
    return sizes, example


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def load_pt2_model(path, name: str | None = None) -> GraphModel:
    """The model in a torch.export archive as a trainable module; CheckpointError (one line) if refused."""
    name = name or Path(path).name
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise CheckpointError(f"{name}: file not found") from None
    except (zipfile.BadZipFile, OSError, ValueError):
        raise CheckpointError(f"{name} is damaged or not a torch.export archive") from None
    with zf:
        try:
            return _load(zf, name)
        except CheckpointError:
            raise
        except (_Damaged, KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError,
                zipfile.BadZipFile, OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{name} is damaged or not a torch.export archive") from None


def _load(zf: zipfile.ZipFile, name: str) -> GraphModel:
    names = zf.namelist()
    root = _root(names)
    programs = [n for n in names if n.startswith(root + "models/") and n.endswith(".json")]
    if not programs:
        programs = [n for n in names if n.endswith("serialized_exported_program.json")]
    if not programs:
        raise CheckpointError(f"{name} is not a torch.export archive (no serialized graph)")
    if len(programs) > 1:
        raise CheckpointError(f"{name} holds several exported models; the workbench reads one model per file")
    program = json.loads(zf.read(programs[0]))
    gm_json = program["graph_module"]
    graph, signature = gm_json["graph"], gm_json["signature"]
    tensor_values = graph["tensor_values"]

    # operators first: a graph that uses anything off the allowlist is refused before weights are read
    nodes = [_node(raw, name) for raw in graph["nodes"]]

    try:
        weights = read_pt2_state_dict(zf, name)
    except NeedsCode:
        raise CheckpointError(f"{name}: the archive stores its weights as pickled Python objects; "
                              "the workbench does not unpickle them (refused)") from None
    constants = _constants(zf, root, name)

    inputs: list[str] = []
    values: dict[str, str] = {}
    state: list[StateEntry] = []
    for spec in signature["input_specs"]:
        kind, val = _one(spec)
        if kind == "user_input":
            akind, arg = _one(val["arg"])
            if akind != "as_tensor":
                raise CheckpointError(f"{name}: a non-tensor model input ({akind}) is not supported; "
                                      "the workbench feeds one tensor")
            inputs.append(arg["name"])
        elif kind in ("parameter", "buffer", "tensor_constant"):
            vname = val["arg"]["name"]
            key = val.get({"parameter": "parameter_name", "buffer": "buffer_name",
                           "tensor_constant": "tensor_constant_name"}[kind])
            source = weights if key in weights else constants
            if key not in source:
                raise CheckpointError(f"{name}: the archive lacks the tensor {key}")
            tensor = source[key]
            if kind == "tensor_constant":
                key = "_constants.c_" + "".join(c if c.isalnum() else "_" for c in key)
            requires_grad = bool(tensor_values.get(vname, {}).get("requires_grad", True))
            state.append(StateEntry(key, tensor, parameter=kind == "parameter",
                                    requires_grad=requires_grad and tensor.is_floating_point(),
                                    persistent=kind == "buffer" and bool(val.get("persistent", True))))
            values[vname] = key
        else:
            raise CheckpointError(f"{name}: a model input of kind {kind} is not supported by the workbench's safe loader")
    if len(inputs) != 1:
        raise CheckpointError(f"{name}: the model takes {len(inputs)} inputs; the workbench needs exactly one tensor")

    output, mutations = None, []
    for spec in signature["output_specs"]:
        kind, val = _one(spec)
        if kind == "user_output":
            if output is not None:
                raise CheckpointError(f"{name}: the model returns several outputs; the workbench needs one tensor")
            akind, arg = _one(val["arg"])
            if akind != "as_tensor":
                raise CheckpointError(f"{name}: the model's output is not a tensor ({akind})")
            output = arg["name"]
        elif kind == "buffer_mutation":
            mutations.append(val["buffer_name"])
        else:
            raise CheckpointError(f"{name}: a model output of kind {kind} is not supported by the workbench's safe loader")
    if output is None:
        raise CheckpointError(f"{name}: the model returns no tensor")

    ranks = {k: len(v["sizes"]) for k, v in tensor_values.items() if isinstance(v, dict) and "sizes" in v}
    module, ops, self_updated = build_graph_module(name, inputs, nodes, output, state, values, ranks)
    for key in mutations:
        if key not in self_updated:
            raise CheckpointError(f"{name}: the graph updates buffer {key} in a way the workbench cannot reproduce")

    in_meta = tensor_values[inputs[0]]
    sizes, example = _dims(in_meta)
    dtype = _DTYPES.get(int(in_meta["dtype"]))
    if dtype is None:
        raise CheckpointError(f"{name}: the model's input has a data type the workbench cannot read")
    out_sizes, _ = _dims(tensor_values[output])
    input_shape = tuple(sizes[1:]) if len(sizes) >= 1 and None not in sizes[1:] else None
    _check_runs(module, name, example, dtype, batch_fixed=bool(sizes) and sizes[0] is not None)
    return GraphModel(module=module, input_shape=input_shape, input_dtype=dtype,
                      num_outputs=out_sizes[-1] if out_sizes else None, ops=dict(ops))


def _check_runs(module: nn.Module, name: str, example: list[int], dtype: torch.dtype, batch_fixed: bool) -> None:
    """Run the built module once on zeros at another batch size: graphs traced with the batch size baked
    into their reshapes only work at that size, which training and evaluation cannot live with."""
    if not example:
        return
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros([example[0] + 1] + example[1:], dtype=dtype))
        if not isinstance(out, torch.Tensor):
            raise CheckpointError(f"{name}: the model's output is not a tensor")
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of the built graph is reported in one line
        if batch_fixed:
            raise CheckpointError(f"{name}: the graph only runs at the batch size it was exported with "
                                  f"({example[0]}); export with a dynamic batch dimension "
                                  "(dynamic_shapes={'x': {0: torch.export.Dim('batch')}})") from None
        raise CheckpointError(f"{name}: the exported graph does not run ({_first_line(e)})") from None
    finally:
        module.train()
