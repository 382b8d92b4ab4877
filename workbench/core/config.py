"""Run configuration: the model, the data, and a pipeline of stages (method + its knobs + training).

The whole config is stored as JSON in every run file, so a run can be repeated from its file alone.
"""

from __future__ import annotations

import json
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


@dataclass(kw_only=True)
class RunSettings:
    """How a run runs, whatever it compresses: declared once, from which come the CLI flags
    (`--device`, `--seed`, `--train-subset`, ...), the app's Run settings and the run file's config."""

    DEVICES = ("auto", "cpu", "cuda", "mps")        # what core.devices.pick_device understands

    device: str = knob("auto", "Device", "auto: CUDA when present, else MPS where available, else CPU.",
                       choices=DEVICES)
    seed: int = knob(0, "Seed", "Seeds the model's initialisation, the data order and the subsets.",
                     min=0, max=2**31 - 1)
    train_subset: int = knob(0, "Train samples", "Use only N training samples (seeded), for a quick look. An "
                             "epoch is then N / batch optimizer steps, and methods that act per step (low "
                             "rank's shrinkage, soft weight-sharing's prior, surgery) do less in it: a subset "
                             "shows a method working, not the ratio a full run reaches.",
                             min=0, max=10_000_000, step=1000, special="all")
    test_subset: int = knob(0, "Test samples", "Evaluate on only N test samples (seeded).",
                            min=0, max=10_000_000, step=1000, special="all", advanced=True)
    data_dir: str = knob("", "Data folder", "Where data sets live; searched before WORKBENCH_DATA, the user "
                         "cache and /usr/share/datasets.")
    huffman: bool = knob(False, "Huffman coding", "Storage ratio and compact export count Huffman-coded "
                         "relative indices and codebook indices (Deep Compression, stage 3). Off: "
                         "fixed-width codes.")
    pretrain_epochs: int = knob(0, "Pretrain epochs", "Epochs to pretrain a zoo architecture when no "
                                "checkpoint is given (0: the model's recipe); the reference is cached.",
                                min=0, max=10000, special="recipe")


SETTINGS = tuple(s.name for s in P.specs(RunSettings))


@dataclass(kw_only=True)
class RunConfig(RunSettings):
    dataset: str
    stages: list[StageConfig]
    model: str | None = None            # zoo key; with checkpoint, the architecture to load it into
    checkpoint: str | None = None
    out_dir: str = "runs"
    name: str | None = None
    preset: str | None = None
    trust_code: bool = False            # the one opt-in for files that run code (pickles, TorchScript)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        d = json.loads(text)
        d["stages"] = [StageConfig(**s) for s in d["stages"]]
        if "trust_checkpoint" in d:                      # its name before it covered every kind of code
            d.setdefault("trust_code", d.pop("trust_checkpoint"))
        known = set(cls.__dataclass_fields__)
        # Files from before the settings were declared stored "none" as null (data_dir, subsets).
        defaults = {s.name: s.default for s in P.specs(RunSettings)}
        return cls(**{k: (defaults[k] if v is None and k in defaults else v) for k, v in d.items() if k in known})

    def settings(self) -> dict:
        """The run settings as a dict (RunSettings' fields)."""
        return {name: getattr(self, name) for name in SETTINGS}

    @property
    def method_label(self) -> str:
        return "+".join(s.method for s in self.stages)


def train_params(values: dict) -> TrainParams:
    return P.build(TrainParams, values)
