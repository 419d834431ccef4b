"""ImageNet weights: the libraries' real loaders from a filled cache, a clear error when offline."""

from __future__ import annotations

import time

import pytest
import torch
from huggingface_hub import constants

from medlens.errors import ConfigError, InputError
from medlens.models import MODELS, ModelWeightsError, create_model

PRETRAINED_2D = [name for name in MODELS.names() if 2 in MODELS.get(name).pretrained_dims]


@pytest.fixture
def offline_caches(tmp_path, monkeypatch):
    """Empty Hugging Face and torch hub caches on a machine told it is offline."""
    hf_cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # let TORCH_HOME decide
    return {"hf": hf_cache, "torch": tmp_path / "torch" / "hub" / "checkpoints"}


@pytest.mark.parametrize("name", PRETRAINED_2D)
def test_offline_without_cached_weights_names_the_cache_and_how_to_fill_it(name, offline_caches):
    start = time.monotonic()
    with pytest.raises(ModelWeightsError) as err:
        create_model(name, in_channels=1, pretrained="imagenet")
    assert time.monotonic() - start < 10, "must fail at once, not retry a download"
    assert isinstance(err.value, InputError)
    message = str(err.value)
    assert "offline" in message and "on a machine with internet" in message
    if name in ("alexnet", "googlenet"):
        expected = offline_caches["torch"]
        assert err.value.path.startswith(str(expected)) and err.value.path.endswith(".pth")
        assert "download.pytorch.org" in message
    else:
        expected = offline_caches["hf"] / "models--timm--"
        assert err.value.path.startswith(str(expected))
        assert f"hf download timm/{name}." in message


def test_timm_weights_in_the_hub_cache_load_without_network(offline_caches):
    """The layout `hf download` leaves: refs/main -> snapshots/<commit>/model.safetensors."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    imagenet = timm.create_model("resnet18", num_classes=1000).state_dict()
    commit = "0" * 40
    repo = offline_caches["hf"] / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(imagenet, str(repo / "snapshots" / commit / "model.safetensors"))

    model = create_model(
        "resnet18", in_channels=1, num_classes=2, pretrained="imagenet", cifar_stem=False
    )
    state = model.state_dict()
    torch.testing.assert_close(
        state["net.conv1.weight"], imagenet["conv1.weight"].sum(dim=1, keepdim=True)
    )
    torch.testing.assert_close(
        state["net.layer4.1.conv2.weight"], imagenet["layer4.1.conv2.weight"]
    )
    assert model.head.out_features == 2

    small = create_model(
        "resnet18", in_channels=1, num_classes=2, pretrained="imagenet", input_size=28
    )
    assert small.first_conv().kernel_size == (3, 3)  # the small-input stem is new
    torch.testing.assert_close(
        small.state_dict()["net.layer1.0.conv1.weight"], imagenet["layer1.0.conv1.weight"]
    )


def test_torchvision_weights_in_the_torch_hub_cache_load_without_network(offline_caches):
    from torchvision.models import GoogLeNet

    torch.manual_seed(4)
    imagenet = GoogLeNet(num_classes=1000, aux_logits=True, init_weights=True).state_dict()
    offline_caches["torch"].mkdir(parents=True)
    torch.save(imagenet, offline_caches["torch"] / "googlenet-1378be20.pth")

    model = create_model(
        "googlenet", in_channels=3, num_classes=2, pretrained="imagenet", dropout=0.3
    )
    state = model.state_dict()
    torch.testing.assert_close(state["net.conv1.conv.weight"], imagenet["conv1.conv.weight"])
    torch.testing.assert_close(
        state["net.inception5b.branch1.conv.weight"], imagenet["inception5b.branch1.conv.weight"]
    )
    assert not any(".aux" in key for key in state) and model.head.out_features == 2
    assert model.net.dropout.p == 0.3

    grey = create_model("googlenet", in_channels=1, num_classes=2, pretrained="imagenet")
    torch.testing.assert_close(
        grey.first_conv().weight, imagenet["conv1.conv.weight"].sum(dim=1, keepdim=True)
    )


def test_a_corrupt_cached_file_is_a_weights_error(offline_caches):
    offline_caches["torch"].mkdir(parents=True)
    broken = offline_caches["torch"] / "alexnet-owt-7be5be79.pth"
    broken.write_bytes(b"truncated download")
    with pytest.raises(
        ModelWeightsError, match="could not load ImageNet weights for alexnet"
    ) as err:
        create_model("alexnet", pretrained="imagenet")
    assert err.value.path == str(broken)


@pytest.mark.parametrize(
    ("name", "dims"), [("resnet18", 3), ("densenet121", 3), ("small_cnn", 2), ("lenet5", 2)]
)
def test_models_without_imagenet_weights_refuse_pretrained(name, dims):
    with pytest.raises(ConfigError, match="no ImageNet weights exist"):
        create_model(name, spatial_dims=dims, pretrained="imagenet")
