"""``medlens gan sample``: synthetic images from a GAN run, as PNGs or a MedMNIST ``.npz``.

PNGs go to ``OUT/<class name>/<index>.png`` (the layout of ``data.format: folder``); an
``.npz`` holds ``train_images``/``train_labels`` in the MedMNIST layout, with the
``val``/``test`` arrays copied from a real file when one is given (else empty), so that
the synthetic images can be mixed into training (``augment_with_synthetic``) or trained on.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medlens.data.medmnist import MedMNISTArrays, load_medmnist_npz
from medlens.errors import ConfigError, InputError
from medlens.io_utils import write_atomic
from medlens.models.gan import ConditionalGenerator, GanSpec
from medlens.run_folder import layout
from medlens.run_folder.checkpoint import load_checkpoint
from medlens.train.gan.data import check_2d, to_stored_pixels

_BATCH = 256


def load_generator(
    run_dir: str | Path, device: str | torch.device | None = None
) -> tuple[ConditionalGenerator, list[str]]:
    """The trained generator of a GAN run folder (eval mode) and its class names.

    Raises:
        InputError: no run folder, no ``generator.pt``, or a checkpoint that is not a
            medlens GAN generator.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(run, "GAN run folder not found")
    path = run / layout.GENERATOR
    if not path.is_file():
        raise InputError(path, "not found; is this a GAN run folder (medlens gan train)?")
    state = load_checkpoint(path)
    try:
        generator = ConditionalGenerator(GanSpec(**state["spec"]))
        generator.load_state_dict(state["model"])
        class_names = [str(name) for name in state["class_names"]]
    except (KeyError, TypeError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"is not a medlens GAN generator checkpoint ({reason})") from None
    if device is not None:
        generator.to(device)
    return generator.eval(), class_names


def generate(
    generator: ConditionalGenerator,
    labels: torch.Tensor,
    seed: int,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Images ``(N, C, S, S)`` in [-1, 1] for the class ``labels`` ``(N,)``, from noise drawn
    with ``seed`` on the CPU (same generator + labels + seed -> same images). The generator
    runs in eval mode (its mode is restored) and the images come back on the CPU."""
    device = device if device is not None else next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn((len(labels), generator.spec.latent_dim), generator=rng)
    was_training = generator.training
    generator.eval()
    out = []
    with torch.no_grad():
        for zc, yc in zip(z.split(_BATCH), labels.long().split(_BATCH), strict=True):
            out.append(generator(zc.to(device), yc.to(device)).cpu())
    generator.train(was_training)
    if not out:
        s = generator.spec
        return torch.zeros((0, s.channels, s.image_size, s.image_size))
    return torch.cat(out)


def requested_labels(class_name_or_index: str | int | None, n: int, class_names: list[str]) -> np.ndarray:  # fmt: skip
    """``n`` class indices: all of one class (given by name or index), or, for ``None`` /
    ``"balanced"``, as even a share of every class as ``n`` allows, grouped by class.

    Raises:
        ConfigError: ``n`` below 1, or an unknown class name or index.
    """
    if n < 1:
        raise ConfigError("n", f"must be at least 1 image, got {n}")
    k = len(class_names)
    if class_name_or_index is None or class_name_or_index == "balanced":
        return np.sort(np.arange(n) % k)
    if isinstance(class_name_or_index, str) and class_name_or_index in class_names:
        return np.full(n, class_names.index(class_name_or_index), dtype=np.int64)
    text = str(class_name_or_index)
    if text.lstrip("-").isdigit() and 0 <= int(text) < k:
        return np.full(n, int(text), dtype=np.int64)
    choices = ", ".join(f"{i}={name}" for i, name in enumerate(class_names))
    raise ConfigError("class", f"unknown class {class_name_or_index!r}; the GAN knows {choices}")


def _labels_array(labels: np.ndarray) -> np.ndarray:
    return labels.reshape(-1, 1).astype(np.uint8 if labels.max(initial=0) < 256 else np.int64)


def write_synthetic_npz(
    pixels: np.ndarray, labels: np.ndarray, out: Path, real: MedMNISTArrays | None = None
) -> Path:
    """``train_images``/``train_labels`` = the synthetic images; ``val``/``test`` copied from
    the ``real`` file (whose image shape the synthetic images must then have), else empty."""
    arrays: dict[str, Any] = {"train_images": pixels, "train_labels": _labels_array(labels)}
    if real is not None:
        for split in ("val", "test"):
            arrays[f"{split}_images"] = real.images[split]
            arrays[f"{split}_labels"] = _labels_array(real.labels[split])
    else:
        for split in ("val", "test"):
            arrays[f"{split}_images"] = np.zeros((0, *pixels.shape[1:]), dtype=np.uint8)
            arrays[f"{split}_labels"] = np.zeros((0, 1), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_atomic(out, buffer.getvalue())


def _folder_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "class"


def write_png_folder(
    pixels: np.ndarray, labels: np.ndarray, class_names: list[str], out: Path
) -> Path:
    """``out/<class name>/<index:05d>.png``, written beside ``out`` and renamed into place."""
    from PIL import Image

    stage = out.with_name(f".{out.name}.partial")
    if stage.exists():
        shutil.rmtree(stage)
    counts: dict[int, int] = {}
    for image, label in zip(pixels, labels, strict=True):
        index = counts.get(int(label), 0)
        counts[int(label)] = index + 1
        folder = stage / _folder_name(class_names[int(label)])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index:05d}.png")
    if out.exists():
        shutil.rmtree(out)
    os.replace(stage, out)
    return out


def sample_gan(
    run_dir: str | Path,
    n: int,
    class_name_or_index: str | int | None = None,
    out: str | Path = "synthetic.npz",
    seed: int = 0,
    real_npz: str | Path | None = None,
    overwrite: bool = False,
    device: str | None = None,
) -> Path:
    """Generate ``n`` images of a GAN run and write them as PNGs or a MedMNIST ``.npz``.

    Args:
        run_dir: a finished GAN run folder.
        n: number of images.
        class_name_or_index: one class (name or index) for every image, or None /
            ``"balanced"`` for an even share of every class.
        out: an ``.npz`` file, or a folder for PNGs (``out/<class name>/00000.png``).
        seed: seeds the noise: same run + class + n + seed -> same images.
        real_npz: a real MedMNIST file (``.npz`` output only) whose ``val``/``test`` splits
            are copied; the synthetic images are resized (bilinear) to its image size.
        overwrite: replace an existing ``out``.
        device: where the generator runs; default CUDA when available.

    Returns:
        ``out``.

    Raises:
        InputError: a bad run folder, an existing ``out`` without ``overwrite``, or a
            ``real_npz`` that cannot be read or has another channel count.
        ConfigError: ``n`` below 1 or an unknown class.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(out, "already exists (use --overwrite or another name)")
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    generator, class_names = load_generator(run_dir, dev)
    labels = requested_labels(class_name_or_index, n, class_names)
    images = generate(generator, torch.from_numpy(labels), seed, dev)
    if out.suffix != ".npz":
        return write_png_folder(to_stored_pixels(images), labels, class_names, out)
    shape, real = None, None
    if real_npz is not None:
        real = load_medmnist_npz(real_npz)
        check_2d(real)
        shape = tuple(real.images["train"].shape[1:])
        channels = 3 if real.layout == "rgb" else 1
        if channels != generator.spec.channels:
            raise InputError(
                real_npz,
                f"holds {channels}-channel images; the GAN makes {generator.spec.channels}",
            )
    return write_synthetic_npz(to_stored_pixels(images, shape), labels, out, real)
