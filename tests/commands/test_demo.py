"""The demo's config is the documented recipe, and it validates."""

from __future__ import annotations

from pathlib import Path

import yaml

from medlens.commands.demo import demo_config
from medlens.config import parse_config

REPO = Path(__file__).resolve().parents[2]


def test_demo_uses_the_recipe_of_configs(pneumonia_npz: Path, tmp_path: Path) -> None:
    demo = parse_config(demo_config(pneumonia_npz, tmp_path, 4.0))
    recipe = yaml.safe_load((REPO / "configs" / "pneumoniamnist_resnet18.yaml").read_text())
    assert [t.model_dump() for t in demo.preprocess] == recipe["preprocess"]
    assert [t.model_dump() for t in demo.augment] == recipe["augment"]
    for section in ("model", "train"):
        ours = getattr(demo, section).model_dump(mode="json")
        for key, value in recipe[section].items():
            if key != "max_minutes":
                assert ours[key] == value, f"{section}.{key}"
    assert demo.train.max_minutes == 4.0


def test_every_example_config_validates(monkeypatch) -> None:
    from medlens.tasks import load_config

    monkeypatch.chdir(REPO)
    for path in sorted((REPO / "configs").glob("*.yaml")):
        assert load_config(path).name, path
