"""Run configuration: the model, the data, and a pipeline of stages (method + its knobs + training).

The whole config is stored as JSON in every run file, so a run can be repeated from its file alone.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field

from workbench.core import params as P
from workbench.core.params import knob


@dataclass
class TrainParams:
    """Training knobs shared by every method's stage (the retraining / fine-tuning loop)."""

    epochs: int = knob(10, "Epochs", "Passes over the training set in this stage.", min=0, max=10000)
    batch_size: int = knob(128, "Batch size", min=1, max=65536)
    optimizer: str = knob("sgd", "Optimizer", choices=("sgd", "adam"))
    lr: float = knob(0.01, "Learning rate", "Peak learning rate of the stage.", min=0.0, max=10.0, log=True)
    momentum: float = knob(0.9, "Momentum", "SGD momentum (Adam: beta1).", min=0.0, max=0.9999)
    nesterov: bool = knob(True, "Nesterov", "Nesterov momentum for SGD.")
    weight_decay: float = knob(0.0, "Weight decay", "L2 penalty (decoupled for Adam).", min=0.0, max=1.0,
                               log=True)
    lr_schedule: str = knob("constant", "LR schedule",
                            "constant; cosine decay to 0; onecycle (warm up then anneal); step (x0.1 at "
                            "50% and 75%).", choices=("constant", "cosine", "onecycle", "step"))
    eval_every: int = knob(1, "Evaluate every", "Evaluate and record per-layer stats every N epochs.",
                           min=1, max=1000, advanced=True)


@dataclass
class StageConfig:
    method: str
    params: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)


@dataclass
class RunConfig:
    dataset: str
    stages: list[StageConfig]
    model: str | None = None            # zoo key; with checkpoint, the architecture to load it into
    checkpoint: str | None = None
    data_dir: str | None = None
    device: str = "auto"
    seed: int = 0
    out_dir: str = "runs"
    name: str | None = None
    preset: str | None = None
    train_subset: int | None = None     # for quick looks and tests: use the first N (seeded) samples
    test_subset: int | None = None
    trust_checkpoint: bool = False
    pretrain_epochs: int = 0            # with no checkpoint: train the zoo model this long first
    huffman: bool = False               # storage counts Huffman-coded index/code streams (Deep Compression)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        d = json.loads(text)
        d["stages"] = [StageConfig(**s) for s in d["stages"]]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def method_label(self) -> str:
        return "+".join(s.method for s in self.stages)

    def cli_command(self) -> str:
        """The `workbench run` command line that repeats this run; a pipeline's knobs carry their stage
        number (`--set 2.bits_fc=5`)."""
        args = ["workbench", "run"]
        if self.checkpoint:
            args += ["--checkpoint", self.checkpoint]
            if self.model:
                args += ["--model", self.model]
        else:
            args += ["--model", str(self.model)]
        args += ["--dataset", self.dataset, "--method", ",".join(s.method for s in self.stages)]
        for i, stage in enumerate(self.stages):
            prefix = f"{i + 1}." if len(self.stages) > 1 else ""
            for k, v in {**stage.params, **stage.train}.items():
                text = P.format_layer_map(v) if isinstance(v, dict) else str(v).lower() if isinstance(
                    v, bool) else str(v)
                args += ["--set", f"{prefix}{k}={text}"]
        if self.huffman:
            args.append("--huffman")
        args += ["--device", self.device, "--seed", str(self.seed)]
        return shlex.join(args)


def train_params(values: dict) -> TrainParams:
    return P.build(TrainParams, values)
