"""An int8 model's ONNX graph with its weights stored as int8.

torch.onnx writes an int8 layer's weight as its fp32 initializer followed by QuantizeLinear and
DequantizeLinear (what the fake-quantize op means). ONNX Runtime folds that QuantizeLinear when it loads
the model, but the file still holds 32 bits per weight. Here each QuantizeLinear whose input is a
constant is computed once, as ONNX defines it (saturate(round_half_even(x / scale) + zero_point)), and
its int8 result becomes the initializer DequantizeLinear reads: the QDQ form ONNX Runtime's own
quantizer writes, 8 bits per weight on disk. The values DequantizeLinear gives are unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_RANGES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None:
                values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _quantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * x.ndim
    if scale.size > 1:
        shape[axis] = -1
    low, high = _RANGES[zero.dtype]
    q = np.rint(x / scale.reshape(shape)) + zero.reshape(shape).astype(np.int32)   # rint: half to even
    return np.clip(q, low, high).astype(zero.dtype)


def fold_weight_quantization(path: Path) -> int:
    """Rewrite the ONNX file at `path` with constant QuantizeLinear nodes folded into int8 initializers;
    returns how many were folded."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    consts = _constants(graph)
    folded = []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3 or not all(i in consts for i in node.input[:3]):
            continue
        x, scale, zero = (consts[i] for i in node.input[:3])
        if zero.dtype not in _RANGES or not np.issubdtype(x.dtype, np.floating):
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        q = _quantize(x.astype(np.float32), scale.astype(np.float32), zero, axis % max(x.ndim, 1))
        graph.initializer.append(numpy_helper.from_array(q, f"{node.input[0]}_int8"))   # e.g. fc1.weight_int8
        folded.append(node)
    if not folded:
        return 0
    renamed = {node.output[0]: f"{node.input[0]}_int8" for node in folded}
    for node in folded:
        graph.node.remove(node)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    for n in [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in used]:
        graph.node.remove(n)
    onnx.save(model, str(path))
    return len(folded)
