"""Init checkpoints that need care: other input channels, raw state_dicts, wrong or bad files."""

from __future__ import annotations

import pytest
import torch

from medlens.errors import InputError
from medlens.models import create_model, load_init_weights


def _save(model, path, raw: bool = False):
    payload = (
        model.state_dict() if raw else {"model": model.state_dict(), "model_config": model.config}
    )
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("name", "dims"), [("small_cnn", 2), ("small_cnn", 3), ("resnet18", 2), ("googlenet", 2)]
)
@pytest.mark.parametrize(("source_channels", "target_channels"), [(3, 1), (1, 3)])
def test_init_adapts_the_first_convolution_to_other_input_channels(
    name, dims, source_channels, target_channels, tmp_path
):
    source = create_model(name, in_channels=source_channels, spatial_dims=dims, input_size=28)
    path = _save(source, tmp_path / "model.pt")
    target = create_model(
        name, in_channels=target_channels, spatial_dims=dims, input_size=28, init=path
    )
    key = target.init_report["adapted"]
    assert len(key) == 1
    w_source, w_target = source.first_conv().weight.detach(), target.first_conv().weight.detach()
    assert w_target.shape[1] == target_channels
    # A grey image fed to every channel gives the source network's first-layer response.
    grey = torch.randn((1, 1) + (12,) * dims)
    conv = torch.nn.functional.conv2d if dims == 2 else torch.nn.functional.conv3d
    torch.testing.assert_close(
        conv(grey.expand(-1, target_channels, *grey.shape[2:]), w_target),
        conv(grey.expand(-1, source_channels, *grey.shape[2:]), w_source),
    )


def test_the_head_left_out_is_the_one_a_fresh_model_gets(tmp_path):
    path = _save(create_model("resnet18", num_classes=5, input_size=28), tmp_path / "model.pt")
    torch.manual_seed(7)
    fresh = create_model("resnet18", num_classes=2, input_size=28)
    torch.manual_seed(7)
    started = create_model("resnet18", num_classes=2, input_size=28, init=path)
    assert started.init_report["skipped_head"] == ["net.fc.weight", "net.fc.bias"]
    torch.testing.assert_close(started.head.weight, fresh.head.weight)
    assert not torch.equal(started.first_conv().weight, fresh.first_conv().weight)


def test_raw_state_dict_and_ddp_prefixes_are_accepted(tmp_path):
    source = create_model("small_cnn", num_classes=4)
    path = tmp_path / "raw.pt"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    model = create_model("small_cnn", num_classes=4, init=path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, source.state_dict()[key])
    assert model.init_report["source_model"] is None and not model.init_report["skipped_head"]


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (("small_cnn", 2), ("resnet18", 2)),
        (("lenet5", 2), ("small_cnn", 2)),
        (("small_cnn", 2), ("small_cnn", 3)),
        (("resnet18", 2), ("densenet121", 2)),
    ],
)
def test_init_from_another_architecture_fails_naming_the_file(source, target, tmp_path):
    path = _save(
        create_model(source[0], spatial_dims=source[1], input_size=28), tmp_path / "other.pt"
    )
    model = create_model(target[0], spatial_dims=target[1], input_size=28)
    with pytest.raises(InputError, match="another architecture") as err:
        load_init_weights(model, path)
    assert err.value.path == str(path)
    assert f"a {source[0]} checkpoint" in str(err.value)


def test_a_trainer_checkpoint_with_numpy_values_loads_but_pickled_code_is_refused(tmp_path):
    import fractions

    import numpy as np

    source = create_model("small_cnn", num_classes=2)
    trainer_like = {
        "model": source.state_dict(),
        "model_config": source.config,
        "threshold": np.float64(0.42),
        "history": [{"val_auc": np.float32(0.9), "loss": np.array([0.5, 0.4])}],
        "class_names": ["normal", "pneumonia"],
    }
    torch.save(trainer_like, tmp_path / "model.pt")
    model = create_model("small_cnn", num_classes=2, init=tmp_path / "model.pt")
    assert torch.equal(model.head.weight, source.head.weight)

    torch.save({**trainer_like, "extra": fractions.Fraction(1, 3)}, tmp_path / "unsafe.pt")
    with pytest.raises(InputError, match="fractions.Fraction"):
        create_model("small_cnn", num_classes=2, init=tmp_path / "unsafe.pt")


def test_missing_or_unreadable_init_file_is_an_input_error(tmp_path):
    model = create_model("small_cnn")
    with pytest.raises(InputError, match="not found"):
        load_init_weights(model, tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable torch checkpoint") as err:
        create_model("small_cnn", init=garbage)
    assert str(garbage) in str(err.value)
    other = tmp_path / "numbers.pt"
    torch.save({"epoch": 3}, other)
    with pytest.raises(InputError, match="neither a medlens checkpoint"):
        load_init_weights(model, other)
