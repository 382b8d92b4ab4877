"""Users' architectures, built in Python (no torchvision): what the workbench must compress besides its
zoo. Each takes images (C, H, W) and returns logits, and each is also a `FILE.py:NAME` model
(`--model tests/model_tests/architectures.py:ResNet18Style --trust-code`).

    ResNet18Style     BasicBlocks with BatchNorm and residual adds, a strided stage, global pooling
    MobileNetV2Style  inverted residuals: 1x1 expand, depthwise 3x3, 1x1 project (ReLU6, BatchNorm)
    TransformerStyle  image rows as tokens: a linear patch embedding, LayerNorm, multi-head attention,
                      GELU MLP (nn.TransformerEncoderLayer), mean pooling
    Conv1dNet         image rows as a sequence of channels: 1-D convolutions with BatchNorm1d
    TokenClassifier   pixels quantised to tokens, an nn.Embedding, a GELU MLP over the mean embedding
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18Style(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 2 * width))
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV2Style(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(8, 8, 1, 2), InvertedResidual(8, 16, 2, 3),
                                    InvertedResidual(16, 16, 1, 3))
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class TransformerStyle(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 8, dim: int = 16):
        super().__init__()
        self.embed = nn.Linear(in_channels * width, dim)
        self.encoder = nn.TransformerEncoderLayer(dim, nhead=2, dim_feedforward=32, dropout=0.0,
                                                  activation="gelu", batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x):
        b, c, h, w = x.shape
        tokens = self.embed(x.permute(0, 2, 1, 3).reshape(b, h, c * w))     # one token per image row
        return self.fc(self.norm(self.encoder(tokens)).mean(dim=1))


class Conv1dNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, height: int = 8):
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels * height, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(16)
        self.conv2 = nn.Conv1d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        b, c, h, w = x.shape
        seq = x.reshape(b, c * h, w)                                         # columns as time steps
        return self.fc(F.relu(self.conv2(F.relu(self.bn1(self.conv1(seq))))).mean(dim=2))


class TokenClassifier(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, tokens: int = 16, dim: int = 8):
        super().__init__()
        self.tokens = tokens
        self.embed = nn.Embedding(tokens, dim)
        self.fc1 = nn.Linear(dim, 32)
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x):
        ids = (x.clamp(0, 1) * (self.tokens - 1)).round().long().flatten(1)    # pixels as token ids
        return self.fc2(F.gelu(self.fc1(self.embed(ids).mean(dim=1))))


ARCHITECTURES = {"resnet18": ResNet18Style, "mobilenetv2": MobileNetV2Style, "transformer": TransformerStyle,
                 "conv1d": Conv1dNet, "tokens": TokenClassifier}
