"""CachedDataset: the same batches as the uncached dataset, bit for bit, with preprocessing
run once; augmentation still drawn anew every epoch; a new cache when anything changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medlens.data.cache import CachedDataset, source_fingerprint
from medlens.data.case import Case
from medlens.data.dataset import CaseDataset
from medlens.data.image import Image
from medlens.data.medmnist import load_medmnist_npz
from medlens.errors import ConfigError
from medlens.preprocess.pipeline import build_pipeline

AUGMENT = [
    {"name": "random_flip", "axes": [-1], "p": 0.5},
    {"name": "random_affine", "degrees": 15, "scale": 0.1, "translation": 3, "p": 0.8},
    {"name": "random_brightness_contrast", "p": 0.5},
]
PREPROCESS = [{"name": "fixed_scale", "divisor": 255}, {"name": "resize", "size": [32, 32]}]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


class CountingPipeline:
    """A pipeline that counts its calls (how often preprocessing really ran)."""

    def __init__(self, specs: list[dict]) -> None:
        self.pipeline = build_pipeline(specs)
        self.calls = 0

    def __call__(self, image: Image) -> Image:
        self.calls += 1
        return self.pipeline(image)

    def to_config(self) -> list[dict]:
        return self.pipeline.to_config()


@pytest.fixture(scope="module")
def source(pneumonia_npz: Path):
    case_set = load_medmnist_npz(pneumonia_npz).as_source()
    cases = [c for c in case_set.cases if c.split == "train"][:48]
    return case_set, cases


def _epochs(dataset, epochs: int = 2, workers: int = 0) -> list[list[torch.Tensor]]:
    out = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=16, num_workers=workers)
        out.append([x for x, _, _ in loader])
    return out


def _uncached(case_set, cases, preprocess_specs=PREPROCESS, seed: int = 7) -> CaseDataset:
    preprocess = build_pipeline(preprocess_specs)
    augment = build_pipeline(AUGMENT)
    return CaseDataset(case_set, cases, lambda im, rng: augment(preprocess(im), rng), seed=seed)


@pytest.mark.parametrize(("mode", "workers"), [("memory", 0), ("disk", 0), ("disk", 1)])
def test_batches_equal_the_uncached_ones_bit_for_bit(
    source, tmp_path: Path, mode: str, workers: int
) -> None:
    case_set, cases = source
    reference = _epochs(_uncached(case_set, cases))
    preprocess = CountingPipeline(PREPROCESS)
    cached = CachedDataset(
        case_set, cases, preprocess, build_pipeline(AUGMENT), 7, mode, tmp_path, "pneumonia"
    )
    got = _epochs(cached, workers=workers)
    for ref_epoch, got_epoch in zip(reference, got, strict=True):
        for a, b in zip(ref_epoch, got_epoch, strict=True):
            assert torch.equal(a, b)
    # Preprocessing ran once per case (in this process), not once per case and epoch.
    assert preprocess.calls == (len(cases) if workers == 0 or mode == "disk" else 0)
    # Augmentation is drawn anew: the two epochs differ, though the cached images do not.
    assert not all(torch.equal(a, b) for a, b in zip(got[0], got[1], strict=True))


def test_a_disk_cache_is_reused_and_invalidated_when_preprocessing_changes(
    source, tmp_path: Path
) -> None:
    case_set, cases = source
    first = CachedDataset(
        case_set, cases, build_pipeline(PREPROCESS), mode="disk", cache_dir=tmp_path
    )
    again = CountingPipeline(PREPROCESS)
    reopened = CachedDataset(case_set, cases, again, mode="disk", cache_dir=tmp_path)
    assert reopened.cache_path == first.cache_path and again.calls == 0

    brighter = [{"name": "fixed_scale", "divisor": 127.5}, PREPROCESS[1]]
    changed = CountingPipeline(brighter)
    other = CachedDataset(case_set, cases, changed, mode="disk", cache_dir=tmp_path)
    assert other.cache_path != first.cache_path and changed.calls == len(cases)
    expected = build_pipeline(brighter)(case_set.load(cases[5])).array
    np.testing.assert_array_equal(other[5][0].numpy(), expected)
    np.testing.assert_allclose(other[5][0].numpy(), 2 * first[5][0].numpy(), rtol=1e-6)

    fewer = CachedDataset(
        case_set, cases[:10], build_pipeline(PREPROCESS), mode="disk", cache_dir=tmp_path
    )
    assert fewer.cache_path not in (first.cache_path, other.cache_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (first.cache_path, other.cache_path, fewer.cache_path)
    )


def test_a_changed_source_file_changes_the_fingerprint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.png").write_bytes(b"1234")
    before = source_fingerprint(data)
    assert source_fingerprint(data) == before
    (data / "a.png").write_bytes(b"12345")
    assert source_fingerprint(data) != before
    (data / "b.png").write_bytes(b"1")
    assert len({before, source_fingerprint(data), source_fingerprint(data / "a.png")}) == 3


class MixedSource:
    """Real radiographs cut to two shapes and two dtypes, and a real 3D CT crop."""

    def __init__(self, pneumonia_npz: Path, adrenal_npz: Path) -> None:
        self.chest = load_medmnist_npz(pneumonia_npz).images["test"][:6]
        self.volume = load_medmnist_npz(adrenal_npz).images["test"][0]
        self.cases = [Case(f"c{i}", label=i % 2) for i in range(7)]
        self.class_names = ["a", "b"]

    def load(self, case: Case) -> Image:
        i = int(case.case_id[1:])
        if i == 6:
            affine = np.diag([0.8, 0.8, 2.5, 1.0])
            return Image(self.volume[None].astype(np.float32), (0.8, 0.8, 2.5), affine)
        array = self.chest[i][None] if i % 2 else self.chest[i][None, 2:22, :24]
        return Image(array.astype(np.float64 if i < 3 else np.float32), (0.5, 0.7))


def test_images_of_several_shapes_dtypes_and_dims_come_back_whole(
    pneumonia_npz: Path, adrenal_npz: Path, tmp_path: Path
) -> None:
    case_set = MixedSource(pneumonia_npz, adrenal_npz)
    preprocess = build_pipeline([])  # keeps each image's dtype
    disk = CachedDataset(case_set, case_set.cases, preprocess, mode="disk", cache_dir=tmp_path)
    assert len(list(disk.cache_path.glob("g*.bin"))) == 5  # 2D f8 x2, 2D f4 x2, 3D f4
    for i, case in enumerate(case_set.cases):
        direct = preprocess(case_set.load(case))
        cached = disk.preprocessed(i)
        assert cached.array.dtype == direct.array.dtype
        np.testing.assert_array_equal(cached.array, direct.array)
        assert cached.spacing == direct.spacing
        assert (cached.affine is None) == (direct.affine is None)
        assert torch.equal(disk[i][0], torch.from_numpy(direct.array.astype(np.float32)))
    np.testing.assert_array_equal(disk.preprocessed(6).affine, np.diag([0.8, 0.8, 2.5, 1.0]))


def test_a_disk_cache_needs_a_folder(source) -> None:
    case_set, cases = source
    with pytest.raises(ConfigError, match="cache folder"):
        CachedDataset(case_set, cases, build_pipeline(PREPROCESS), mode="disk")


def test_a_run_trained_with_the_disk_cache_equals_one_without(
    pneumonia_npz: Path, tmp_path: Path
) -> None:
    import pandas as pd

    from medlens.config import parse_config
    from medlens.train.deep.run import train_from_config

    def train(cache: str) -> Path:
        config = {
            "name": f"tiny-{cache}",
            "seed": 3,
            "output_dir": str(tmp_path / "runs"),
            "data": {
                "format": "medmnist",
                "path": str(pneumonia_npz),
                "train_fraction_used": 0.03,
                "cache": cache,
            },
            "preprocess": [{"name": "fixed_scale", "divisor": 255}],
            "augment": [{"name": "random_flip", "axes": [-1], "p": 0.5}],
            "model": {"name": "small_cnn"},
            "train": {"epochs": 2, "batch_size": 32, "warmup_epochs": 0, "amp": False},
            "evaluate": {"n_bootstrap": 0},
        }
        return train_from_config(parse_config(config), progress=False)

    plain, cached = train("none"), train("disk")
    a = pd.read_csv(plain / "predictions.csv")
    b = pd.read_csv(cached / "predictions.csv")
    pd.testing.assert_frame_equal(a, b)
    assert len(list((tmp_path / "runs" / ".cache").iterdir())) == 3  # train, val, test
