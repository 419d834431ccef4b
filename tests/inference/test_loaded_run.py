"""``load_run``: the network it builds from a run folder, in the layout inference is fastest in."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medlens.config import parse_config
from medlens.inference.loaded_run import load_run
from medlens.models import model_from_config
from medlens.train.deep.run import train_from_config


def _kernels(model: torch.nn.Module) -> list[torch.Tensor]:
    """Convolution kernels with more than one input channel and a spatial extent."""
    return [
        p
        for p in model.parameters()
        if p.dim() in (4, 5) and p.shape[1] > 1 and p.shape[2:].numel() > 1
    ]


def _check_loaded(run_dir: Path, layout: torch.memory_format, input_shape: tuple[int, ...]) -> None:
    """``load_run`` puts every kernel of ``run_dir``'s network in ``layout``, and the network
    gives the output of the same checkpoint loaded in the default layout."""
    run = load_run(run_dir, device="cpu")
    kernels = _kernels(run.model)
    assert kernels and all(k.dim() == len(input_shape) for k in kernels)
    assert all(k.is_contiguous(memory_format=layout) for k in kernels)
    if layout is not torch.contiguous_format:
        assert not any(k.is_contiguous() for k in kernels)

    checkpoint = torch.load(run_dir / "model.pt", weights_only=False)
    default = model_from_config(checkpoint["model_config"])
    default.load_state_dict(checkpoint["model"])
    assert all(p.is_contiguous() for p in default.parameters())
    x = torch.rand(*input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(run.model(x), default.eval()(x), atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def small_cnn_3d_run(adrenal_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3D small_cnn, 1 epoch on a tenth of AdrenalMNIST3D's training split."""
    config = {
        "name": "tiny3d",
        "seed": 3,
        "output_dir": str(tmp_path_factory.mktemp("runs")),
        "data": {"format": "medmnist", "path": str(adrenal_npz), "train_fraction_used": 0.1},
        "preprocess": [{"name": "fixed_scale", "divisor": 255}],
        "model": {"name": "small_cnn", "channels": [4, 8]},
        "train": {"epochs": 1, "batch_size": 16},
        "evaluate": {"n_bootstrap": 0},
    }
    return train_from_config(parse_config(config), progress=False)


def test_a_3d_classifier_loads_channels_last_on_the_cpu_with_unchanged_output(
    small_cnn_3d_run: Path,
) -> None:
    """small_cnn's 3D forward pass is a third faster channels-last (``memory_format.json``)."""
    _check_loaded(small_cnn_3d_run, torch.channels_last_3d, (4, 1, 28, 28, 28))


def test_a_network_measured_slower_channels_last_keeps_the_default_layout(ct_run: Path) -> None:
    """The 3D FCN trains channels-last but predicts faster in the default layout."""
    _check_loaded(ct_run, torch.contiguous_format, (2, 1, 3, 128, 128))


def test_a_2d_classifier_loads_channels_last_and_a_2d_unet_keeps_the_default(
    pneumonia_run: Path, drive_run: Path
) -> None:
    """small_cnn predicts faster channels-last in 2D too; MONAI's U-Net does not."""
    _check_loaded(pneumonia_run, torch.channels_last, (4, 1, 28, 28))
    _check_loaded(drive_run, torch.contiguous_format, (1, 1, 96, 96))
