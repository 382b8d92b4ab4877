"""The test architectures (architectures.py) written as a user would bring them: a torch.export `.pt2`,
an ONNX file, or `FILE.py:NAME`. Shared by the tests and tests/benchmarks/bench_user_models.py."""

from __future__ import annotations

from pathlib import Path

import architectures as A
import torch

FILE = Path(A.__file__).resolve()
KINDS = ("pt2", "onnx", "py")


def model_file(kind: str, name: str, folder: Path, num_classes: int = 4, shape=(1, 8, 8),
               model: torch.nn.Module | None = None) -> str:
    """The architecture `name` as a model spec of the given kind (`model`: these weights, else seeded
    fresh ones). ONNX keeps BatchNorm as BatchNorm (training mode preserved) and needs the onnx package."""
    if name == "resnet20":          # the zoo's ResNet-20 brought as a user would: its class takes (shape, classes)
        from workbench.models import zoo

        if kind == "py":
            return f"{Path(zoo.__file__).resolve()}:ResNet20"
        torch.manual_seed(0)
        model = model or zoo.build_model("resnet20", shape, num_classes)
    else:
        cls = A.ARCHITECTURES[name]
        if kind == "py":
            return f"{FILE}:{cls.__name__}"
        if model is None:
            torch.manual_seed(0)
            model = cls(num_classes=num_classes, in_channels=shape[0])
    model = model.eval()
    x = torch.randn(3, *shape)
    if kind == "pt2":
        from torch.export import Dim, export, save

        path = folder / f"{name}.pt2"
        save(export(model, (x,), dynamic_shapes=({0: Dim("batch")},)), str(path))
        return str(path)
    path = folder / f"{name}.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["logits"], dynamo=False,
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                      training=torch.onnx.TrainingMode.PRESERVE)
    return str(path)
