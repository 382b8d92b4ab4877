"""Reference architectures.

Submodule names (`fc1`, `conv1`, `layer2.0.conv1`, ...) are part of the interface: they become layer names
in plots and run files, and checkpoints are matched against them, so do not rename them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from workbench.core.errors import WorkbenchError

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class ModelInfo:
    key: str
    label: str
    description: str
    default_dataset: str
    params_note: str


def _conv_out(size: int, kernel: int) -> int:
    return size - kernel + 1  # stride 1, no padding


class LeNet300(nn.Module):
    """LeNet-300-100 (LeCun et al. 1998), the MLP used by Han et al. 2015 for MNIST pruning."""

    def __init__(self, input_shape: Shape, num_classes: int):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(math.prod(input_shape), 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(self.flatten(x)))
        return self.fc3(F.relu(self.fc2(x)))


class Mlp1000(nn.Module):
    """784-1000-1000-10 MLP with ReLU: the 3-layer, 1000-unit network of the HashedNets and functional
    hashing experiments on MNIST (Chen et al. 2015; Shi et al. 2016)."""

    def __init__(self, input_shape: Shape, num_classes: int):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(math.prod(input_shape), 1000)
        self.fc2 = nn.Linear(1000, 1000)
        self.fc3 = nn.Linear(1000, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(self.flatten(x)))
        return self.fc3(F.relu(self.fc2(x)))


class LeNet5(nn.Module):
    """LeNet-5 as in Caffe's examples/mnist (20/50 conv channels, 500 hidden units).

    Caffe's net has no nonlinearity after the convolutions, only after fc1; we keep that so weights and
    results compare with the pruning/quantization papers that use it (Han et al. 2015/2016).
    """

    def __init__(self, input_shape: Shape, num_classes: int):
        super().__init__()
        c, h, w = input_shape
        h2, w2 = _conv_out(h, 5) // 2, _conv_out(w, 5) // 2
        h4, w4 = _conv_out(h2, 5) // 2, _conv_out(w2, 5) // 2
        if h4 < 1 or w4 < 1:
            raise WorkbenchError(f"lenet5 needs inputs of at least 16x16 pixels, got {h}x{w}")
        self.conv1 = nn.Conv2d(c, 20, 5)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(50 * h4 * w4, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool2(self.conv2(self.pool1(self.conv1(x))))
        return self.fc2(F.relu(self.fc1(self.flatten(x))))


class _PadShortcut(nn.Module):
    """Option A shortcut (He et al. 2016, sec. 4.2): subsample by stride, zero-pad channels; no params."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        if stride != 1 or in_ch != out_ch:
            self.shortcut: nn.Module = _PadShortcut(stride, out_ch - in_ch)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR ResNet-20 (He et al. 2016, sec. 4.2): 6n+2 layers with n=3, 16/32/64 channels."""

    def __init__(self, input_shape: Shape, num_classes: int):
        super().__init__()
        c, h, w = input_shape
        if h < 8 or w < 8:
            raise WorkbenchError(f"resnet20 needs inputs of at least 8x8 pixels, got {h}x{w}")
        self.conv1 = nn.Conv2d(c, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, 1)
        self.layer2 = self._stage(16, 32, 2)
        self.layer3 = self._stage(32, 64, 2)
        self.fc = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
        blocks = [BasicBlock(in_ch, out_ch, stride)] + [BasicBlock(out_ch, out_ch, 1) for _ in range(2)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class MlpTiny(nn.Module):
    """Two-layer MLP small enough for unit tests."""

    def __init__(self, input_shape: Shape, num_classes: int):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(math.prod(input_shape), 32)
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(self.flatten(x))))


class CnnTiny(nn.Module):
    """One conv + one fc layer, small enough for unit tests."""

    def __init__(self, input_shape: Shape, num_classes: int):
        super().__init__()
        c, h, w = input_shape
        if h < 2 or w < 2:
            raise WorkbenchError(f"cnn_tiny needs inputs of at least 2x2 pixels, got {h}x{w}")
        self.conv1 = nn.Conv2d(c, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(4 * (h // 2) * (w // 2), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc1(self.flatten(self.pool(F.relu(self.conv1(x)))))


class BnTiny(nn.Module):
    """Conv + BatchNorm, a residual block with a depthwise conv, and one fc layer: the layer kinds of a
    small user CNN (BatchNorm buffers, a grouped convolution, an addition), for tests."""

    def __init__(self, input_shape: Shape, num_classes: int):
        super().__init__()
        c, _, _ = input_shape
        self.conv1 = nn.Conv2d(c, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = x + self.pw(F.relu(self.bn2(self.dw(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class SeqTiny(nn.Module):
    """A sequence model over image rows: pixel values quantised to tokens and embedded (nn.Embedding), a
    1-D convolution along the row, then one fc layer: Embedding and Conv1d layers in tests."""

    TOKENS = 16

    def __init__(self, input_shape: Shape, num_classes: int):
        super().__init__()
        c, h, w = input_shape
        self.embed = nn.Embedding(self.TOKENS, 4)
        self.conv = nn.Conv1d(4 * c * h, 8, 3, padding=1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = (x.clamp(0, 1) * (self.TOKENS - 1)).round().long()        # (b, c, h, w)
        e = self.embed(tokens).permute(0, 1, 2, 4, 3).reshape(b, c * h * 4, w)   # rows' embeddings as channels
        return self.fc(F.relu(self.conv(e)).mean(dim=2))


class AttnTiny(nn.Module):
    """A one-block transformer over image rows written with plain layers: a linear token embedding,
    LayerNorm, single-head self-attention (q, k, v and output projections are nn.Linear), a GELU MLP and
    a linear head: attention projections and LayerNorm in tests."""

    def __init__(self, input_shape: Shape, num_classes: int, dim: int = 16):
        super().__init__()
        c, _, w = input_shape
        self.embed = nn.Linear(c * w, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp1 = nn.Linear(dim, 2 * dim)
        self.mlp2 = nn.Linear(2 * dim, dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.embed(x.permute(0, 2, 1, 3).reshape(b, h, c * w))           # one token per row
        n = self.norm1(t)
        att = torch.softmax(self.q(n) @ self.k(n).transpose(1, 2) / math.sqrt(n.shape[-1]), dim=-1)
        t = t + self.out(att @ self.v(n))
        t = t + self.mlp2(F.gelu(self.mlp1(self.norm2(t))))
        return self.fc(t.mean(dim=1))


_MODELS: dict[str, tuple[Callable[[Shape, int], nn.Module], Shape, ModelInfo]] = {
    "lenet300": (LeNet300, (1, 28, 28), ModelInfo(
        "lenet300", "LeNet-300-100", "Fully connected 784-300-100-10 network (LeCun et al. 1998).",
        "mnist", "266,610 parameters on MNIST")),
    "lenet5": (LeNet5, (1, 28, 28), ModelInfo(
        "lenet5", "LeNet-5 (Caffe)", "Two 5x5 convolutions (20, 50 channels) and two fc layers (500, 10).",
        "mnist", "431,080 parameters on MNIST")),
    "resnet20": (ResNet20, (3, 32, 32), ModelInfo(
        "resnet20", "ResNet-20", "CIFAR ResNet with 3x3 BasicBlocks, identity shortcuts (He et al. 2016).",
        "cifar10", "about 0.27M parameters on CIFAR-10")),
    "mlp1000": (Mlp1000, (1, 28, 28), ModelInfo(
        "mlp1000", "MLP 784-1000-1000-10", "Fully connected, two hidden layers of 1000 ReLU units (the "
        "HashedNets / functional hashing MNIST network).", "mnist", "1,796,010 parameters on MNIST")),
    "mlp_tiny": (MlpTiny, (1, 28, 28), ModelInfo(
        "mlp_tiny", "Tiny MLP", "Two fc layers (32 hidden units), for tests and quick checks.",
        "tiny", "25,450 parameters at 1x28x28, 10 classes")),
    "cnn_tiny": (CnnTiny, (1, 28, 28), ModelInfo(
        "cnn_tiny", "Tiny CNN", "One 3x3 conv (4 channels) and one fc layer, for tests and quick checks.",
        "tiny", "7,890 parameters at 1x28x28, 10 classes")),
    "bn_tiny": (BnTiny, (1, 28, 28), ModelInfo(
        "bn_tiny", "Tiny BatchNorm CNN", "Conv + BatchNorm, a residual block with a depthwise conv, one fc "
        "layer: BatchNorm buffers and grouped convolutions in tests and quick checks.", "tiny",
        "338 parameters at 1x28x28, 10 classes")),
    "seq_tiny": (SeqTiny, (1, 28, 28), ModelInfo(
        "seq_tiny", "Tiny sequence model", "Pixel tokens embedded (Embedding), a 1-D convolution along each "
        "row and one fc layer: Embedding and Conv1d layers in tests.", "tiny", "for tests")),
    "attn_tiny": (AttnTiny, (1, 28, 28), ModelInfo(
        "attn_tiny", "Tiny attention model", "One transformer block over image rows written with plain "
        "layers (q, k, v, output projections, LayerNorm, GELU MLP): attention layers in tests.", "tiny",
        "for tests")),
}

ZOO_CLASSES: dict[type, str] = {entry[0]: key for key, entry in _MODELS.items()}  # type: ignore[misc]


def model_keys() -> list[str]:
    return list(_MODELS)


def _entry(key: str):
    try:
        return _MODELS[key]
    except (KeyError, TypeError):
        raise WorkbenchError(f"unknown model {key!r}; known models: {', '.join(_MODELS)}") from None


def model_info(key: str) -> ModelInfo:
    return _entry(key)[2]


def default_input_shape(key: str) -> Shape:
    """(C, H, W) of the model's default data set."""
    return _entry(key)[1]


def check_input_shape(input_shape) -> Shape:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise WorkbenchError(f"input shape must be (channels, height, width), got {input_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise WorkbenchError(f"input shape must be three positive sizes (channels, height, width), got {shape}")
    return shape  # type: ignore[return-value]


def build_model(key: str, input_shape=(1, 28, 28), num_classes: int = 10) -> nn.Module:
    cls = _entry(key)[0]
    shape = check_input_shape(input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise WorkbenchError(f"number of classes must be a positive integer, got {num_classes!r}")
    return cls(shape, num_classes)
