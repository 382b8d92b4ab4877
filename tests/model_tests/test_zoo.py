import pytest
import torch

from workbench.core.errors import WorkbenchError
from workbench.models.layers import compressible_layers, count_params, layer_kind
from workbench.models.zoo import ModelInfo, build_model, model_info, model_keys


def test_param_counts_match_papers():
    assert count_params(build_model("lenet300")) == 266_610
    assert count_params(build_model("lenet5")) == 431_080
    assert 260_000 <= count_params(build_model("resnet20", (3, 32, 32))) <= 280_000


@pytest.mark.parametrize("key,shape", [
    ("lenet300", (1, 28, 28)), ("lenet5", (1, 28, 28)), ("lenet5", (3, 32, 32)), ("lenet300", (3, 32, 32)),
    ("resnet20", (3, 32, 32)), ("resnet20", (1, 8, 12)), ("mlp_tiny", (1, 28, 28)), ("cnn_tiny", (3, 9, 7)),
])
def test_forward_shapes(key, shape):
    model = build_model(key, shape, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, 7)


def test_resnet20_shortcuts_have_no_params():
    model = build_model("resnet20", (3, 32, 32))
    assert not any("shortcut" in name for name, _ in model.named_parameters())
    assert len(compressible_layers(model)) == 20  # 19 convs + fc: the "20" in ResNet-20


def test_shapes_that_do_not_fit_are_workbench_errors():
    with pytest.raises(WorkbenchError, match="16x16"):
        build_model("lenet5", (1, 12, 12))
    with pytest.raises(WorkbenchError, match="8x8"):
        build_model("resnet20", (3, 4, 4))
    with pytest.raises(WorkbenchError, match="input shape"):
        build_model("lenet300", (28, 28))


def test_unknown_key_lists_known_models():
    with pytest.raises(WorkbenchError, match="lenet300.*lenet5.*resnet20"):
        build_model("vgg16")
    with pytest.raises(WorkbenchError):
        model_info("nope")


def test_model_info():
    assert model_keys()[:3] == ["lenet300", "lenet5", "resnet20"]
    info = model_info("lenet5")
    assert isinstance(info, ModelInfo) and info.key == "lenet5" and info.default_dataset == "mnist"


def test_compressible_layers_and_kinds():
    layers = compressible_layers(build_model("lenet5"))
    assert [name for name, _ in layers] == ["conv1", "conv2", "fc1", "fc2"]
    assert [layer_kind(m) for _, m in layers] == ["conv", "conv", "fc", "fc"]
    assert [n for n, _ in compressible_layers(build_model("lenet300"))] == ["fc1", "fc2", "fc3"]
    with pytest.raises(TypeError):
        layer_kind(torch.nn.ReLU())
