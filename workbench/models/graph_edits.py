"""Edits to constants in a model's graph that structural changes need: the amounts of a zero padding of
the channel dimension (a ResNet option-A shortcut pads 16 channels to 32) follow the channels removed
around it.

An edit names the module whose own graph holds the call ("" for a graph-loaded model's root
GraphModule), which pad call it is (the index-th directly in that graph), the amounts as traced (checked
before anything changes) and the new amounts:
    {"module": "layer2.0.shortcut", "op": "pad", "index": 0, "was": [0, 0, 0, 0, 8, 8],
     "value": [0, 0, 0, 0, 5, 6]}
A Python submodule is replaced by its own torch.fx trace with the edit applied: a GraphModule holding
the same submodules under the same names, so the state dict keys stay and ONNX / torch.export see stock
operations. A graph-loaded model's root is edited in place.
"""

from __future__ import annotations

from torch import fx, nn

from workbench.core.errors import CheckpointError
from workbench.models.channel_ops import PADS, op_name


def pad_nodes(gm: fx.GraphModule) -> list[fx.Node]:
    """The pad calls directly in `gm`'s own graph, in order (not those inside traced submodules)."""
    return [n for n in gm.graph.nodes if n.op == "call_function" and op_name(n) in PADS
            and not n.meta.get("nn_module_stack")]


def apply_edits(model: nn.Module, edits: list[dict]) -> None:
    """Apply graph edits to `model` in place; CheckpointError (one line) if one does not fit."""
    by_module: dict[str, list[dict]] = {}
    for edit in edits:
        if edit.get("op") != "pad":
            raise CheckpointError(f"structure edits an operation this build does not know ({edit.get('op')})")
        by_module.setdefault(str(edit["module"]), []).append(edit)
    for path, module_edits in by_module.items():
        try:
            module = model.get_submodule(path) if path else model
        except AttributeError:
            raise CheckpointError(f"structure edits module {path!r}, which the model lacks") from None
        if isinstance(module, fx.GraphModule):
            gm = module
        elif not path:
            raise CheckpointError("structure edits the model's own forward, which only a graph-loaded model allows")
        else:
            try:
                gm = fx.symbolic_trace(module)
            except Exception as exc:  # noqa: BLE001 - user code that torch.fx cannot follow
                raise CheckpointError(f"cannot trace {path} to rebuild its padding ({type(exc).__name__})") from None
        nodes = pad_nodes(gm)
        for edit in module_edits:
            index = int(edit["index"])
            if index >= len(nodes):
                raise CheckpointError(f"structure edits pad call {index} of {path or 'the model'}, which has "
                                      f"{len(nodes)}")
            node = nodes[index]
            if [int(v) for v in node.args[1]] != [int(v) for v in edit["was"]]:
                raise CheckpointError(f"structure expects the pad call {index} of {path or 'the model'} to pad "
                                      f"{list(edit['was'])}; it pads {list(node.args[1])}")
            new = [int(v) for v in edit["value"]]
            node.args = (node.args[0], type(node.args[1])(new), *node.args[2:])
        gm.recompile()
        if gm is not module:
            parent_name, _, child = path.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, gm)
