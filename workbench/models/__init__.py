"""Reference architectures, checkpoints, the replaced-layer structure (factors, thinned and hashed
layers) and the layer helpers the compression methods use."""

from workbench.models.checkpoint import LoadedModel, load_model_file, save_reference
from workbench.models.layers import compressible_layers, count_params, layer_kind
from workbench.models.zoo import ModelInfo, build_model, model_info, model_keys

__all__ = [
    "LoadedModel", "ModelInfo", "build_model", "compressible_layers", "count_params", "layer_kind",
    "load_model_file", "model_info", "model_keys", "save_reference",
]
