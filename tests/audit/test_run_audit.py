"""audit_run on small run folders: multi-class runs, bins, output folder, bad folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score

from medlens.audit import audit_run
from medlens.errors import ConfigError, InputError

CLASSES = ["benign", "malignant", "normal"]


def _multiclass_run(folder: Path, rng: np.random.Generator) -> Path:
    n = 600
    prob = rng.dirichlet([2.0, 2.0, 2.0], n)
    label = np.array([rng.choice(3, p=row) for row in prob])
    df = pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(n)],
            "split": np.where(np.arange(n) % 2 == 0, "val", "test"),
            "label": label,
            **{f"prob_{name}": prob[:, k] for k, name in enumerate(CLASSES)},
            "pred": prob.argmax(1),
            "age": rng.uniform(30, 80, n).round(),
            "site": rng.choice(["north", "south"], n),
        }
    )
    folder.mkdir()
    df.to_csv(folder / "predictions.csv", index=False)
    (folder / "labels.json").write_text(json.dumps({"class_names": CLASSES, "threshold": 0.5}))
    return folder


def test_multiclass_run_is_audited_one_vs_rest(tmp_path: Path, rng) -> None:
    run = _multiclass_run(tmp_path / "run", rng)
    with pytest.raises(ConfigError, match="choose one of benign, malignant, normal"):
        audit_run(run, ["site"], n_bootstrap=0, plots=False)
    with pytest.raises(ConfigError, match="'cyst' is not a class"):
        audit_run(run, ["site"], positive_class="cyst", n_bootstrap=0, plots=False)
    out = tmp_path / "audit"
    result = audit_run(
        run, ["site", "age_bin"], out, positive_class="malignant", n_bootstrap=50,
        bins={"age": [0, 50, 65, 200]},
    )  # fmt: skip
    assert result.threshold is None and result.positive_class == "malignant"
    df = pd.read_csv(run / "predictions.csv")
    test = df[df["split"] == "test"]
    for site in ("north", "south"):
        rows = test[test["site"] == site]
        tpr = recall_score(rows["label"] == 1, rows["pred"] == 1)  # arg-max decisions
        assert result.group("site", site).metrics["tpr"].value == pytest.approx(tpr)
    ages = [g.group for g in result.groups if g.attribute == "age_bin"]
    assert ages == ["[0, 50)", "[50, 65)", "[65, 200)"]
    assert (out / "audit.json").is_file() and (out / "plots" / "audit_site_roc.png").is_file()
    assert not (run / "audit.json").exists()  # the run folder is left as it was


def test_unfittable_mitigation_is_recorded_not_raised(tmp_path: Path, rng) -> None:
    run = _multiclass_run(tmp_path / "run", rng)
    df = pd.read_csv(run / "predictions.csv")
    df.loc[(df["split"] == "val") & (df["site"] == "south"), "label"] = 0  # no malignant case
    df.to_csv(run / "predictions.csv", index=False)
    result = audit_run(
        run, ["site"], positive_class="malignant", n_bootstrap=20, plots=False,
        mitigate=["equalized_odds"],
    )  # fmt: skip
    (record,) = result.mitigations
    assert record["attribute"] == "site" and "val rows of site=south" in record["error"]


def test_incomplete_run_folders_are_named(tmp_path: Path, rng) -> None:
    with pytest.raises(InputError, match="run folder not found"):
        audit_run(tmp_path / "missing", ["site"])
    run = _multiclass_run(tmp_path / "run", rng)
    (run / "labels.json").unlink()
    with pytest.raises(InputError, match="labels.json not found"):
        audit_run(run, ["site"])
    with pytest.raises(ConfigError, match="unknown constraint"):
        audit_run(run, ["site"], mitigate=["parity"])
