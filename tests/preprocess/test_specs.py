"""Transform specs from configs, and the preprocessing chosen when a config names none."""

from __future__ import annotations

import numpy as np

from medlens.config import TransformSpec
from medlens.data.image import Image
from medlens.preprocess.specs import default_preprocess, preprocess_specs, spec_dicts


def test_config_specs_and_mappings_become_plain_dicts() -> None:
    specs = [TransformSpec(name="resize", size=16), {"name": "z_score"}]
    assert spec_dicts(specs) == [{"name": "resize", "size": 16}, {"name": "z_score"}]


def test_eight_bit_images_are_divided_by_255_and_others_clipped_per_image() -> None:
    xray = Image(np.array([[[0.0, 17.0], [128.0, 255.0]]], dtype=np.float32), (1.0, 1.0))
    ct = Image(np.array([[[-1000.0, 40.0], [80.0, 1500.0]]], dtype=np.float32), (0.7, 0.7))
    assert default_preprocess(xray) == [{"name": "fixed_scale", "divisor": 255}]
    assert default_preprocess(ct)[0]["name"] == "percentile_clip"


def test_configured_preprocessing_wins_over_the_default() -> None:
    sample = Image(np.zeros((1, 4, 4), dtype=np.float32), (1.0, 1.0))
    assert preprocess_specs([], sample) == default_preprocess(sample)
    assert preprocess_specs([TransformSpec(name="z_score")], sample) == [{"name": "z_score"}]
