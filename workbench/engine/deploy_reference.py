"""The reference model a finished run started from, found again without training anything.

Where the run got it from decides where to look: a zoo model's pretrained weights sit in the reference
cache (engine/reference.py) under a name computed from the model, the data set, the recipe and the seed,
and the run's `model_source` attribute names the file it used; a user's checkpoint or model file is
named in the run's config. When the weights are gone (a cleared cache, a moved checkpoint) the deployment
measurement still times the architecture (a dense model's speed does not depend on its weight values)
and says that its accuracy is the one the run recorded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from workbench import data as data_mod
from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.engine import reference as ref
from workbench.models import architecture
from workbench.models import checkpoint as ckpt


def find_reference(config: RunConfig, root_attrs: dict, dataset: data_mod.Dataset | None,
                   trust_code: bool = False) -> tuple[nn.Module | None, str]:
    """(the reference model on the CPU, or None when its weights cannot be found; where it came from)."""
    try:
        if config.checkpoint or (config.model and architecture.is_model_file(config.model)):
            return _user_reference(config, dataset, trust_code)
        return _zoo_reference(config, root_attrs, dataset)
    except WorkbenchError as exc:
        return None, f"reference weights not loaded ({exc})"


def _zoo_reference(config: RunConfig, root_attrs: dict, dataset) -> tuple[nn.Module | None, str]:
    places = []
    source = str(root_attrs.get("model_source", ""))
    if source.startswith("reference: "):
        places.append(Path(source[len("reference: "):]))
    if dataset is not None:       # a run that pretrained its reference cached it here
        train = ref.recipe(config.model, epochs=config.pretrain_epochs or None)
        places.append(ref.reference_path(config.model, dataset, train, config.seed))
    for path in places:
        if path.exists():
            return ckpt.load_model_file(path, model_key=config.model).model.cpu().eval(), f"reference {path}"
    return None, "reference weights not found in the reference cache " + (f"({places[-1]})" if places else "")


def _user_reference(config: RunConfig, dataset, trust_code: bool) -> tuple[nn.Module | None, str]:
    if dataset is None:
        return None, "reference not loaded: the run's data set is not available to check it against"
    config.trust_code = trust_code          # asked again here, never taken from the run file
    model, meta = ref.load_user_model(config, dataset, torch.device("cpu"))
    if meta.get("trained", True):
        return model.eval(), meta["source"]
    arch = meta["arch"]              # a user architecture the run pretrained: its cached weights
    train = ref.recipe("", epochs=config.pretrain_epochs or None)
    path = ref.reference_path(f"user-{arch.digest().replace(':', '-')}", dataset, train, config.seed)
    if not path.exists():
        return None, f"reference weights not found in the reference cache ({path})"
    cached = torch.load(path, map_location="cpu", weights_only=True)
    ckpt.load_into(model, cached["state_dict"], str(path))
    return model.eval(), f"{meta['source']}, reference {path}"
