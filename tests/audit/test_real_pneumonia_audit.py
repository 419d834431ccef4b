"""The audit on a real classifier of real PneumoniaMNIST images with an injected site bias.

See conftest.py: site B's images are heavily noised; ``sex`` and ``age`` are random.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score, roc_auc_score

from medlens.audit import (
    audit_predictions,
    audit_run,
    audit_section_html,
    audit_section_markdown,
    mitigate_thresholds,
    read_audit,
)
from medlens.errors import InputError

PROB = "prob_pneumonia"


def test_audit_flags_the_injected_site_gap_and_not_the_random_attribute(biased_run) -> None:
    df = biased_run.predictions
    result = audit_predictions(df, ["site", "sex"], "label", PROB, biased_run.threshold, seed=0)
    test = df[df["split"] == "test"]
    assert result.n_cases == len(test) == 624
    # The noised site is worse, and the audit says so beyond resampling noise.
    for name in ("equal_opportunity", "auc"):
        gap = result.gap("site", name)
        assert gap.flagged, gap
        assert gap.lower_group == "B"
        assert gap.ci_low > 0
    # The random attribute carries no injected gap: nothing flagged.
    assert [g.name for g in result.gaps if g.attribute == "sex" and g.flagged] == []
    # Group values agree with scikit-learn on the same rows.
    for site in ("A", "B"):
        rows = test[test["site"] == site]
        entry = result.group("site", site)
        assert entry.metrics["auc"].value == pytest.approx(roc_auc_score(rows["label"], rows[PROB]))
        decisions = (rows[PROB] >= biased_run.threshold).astype(int)
        assert entry.metrics["tpr"].value == pytest.approx(recall_score(rows["label"], decisions))
        low, high = entry.metrics["auc"].ci_low, entry.metrics["auc"].ci_high
        assert low <= entry.metrics["auc"].value <= high


def test_tpr_parity_thresholds_fitted_on_val_shrink_the_test_gap(biased_run) -> None:
    rows, mitigation = mitigate_thresholds(
        biased_run.predictions,
        "site",
        "true_positive_rate_parity",
        prob_col=PROB,
        threshold=biased_run.threshold,
        n_bootstrap=500,
        seed=0,
    )
    assert (rows["split"] == "test").all() and len(rows) == 624
    assert set(np.unique(rows["pred_mitigated"])) <= {0, 1}
    before = mitigation.before.gap("site", "equal_opportunity")
    after = mitigation.after.gap("site", "equal_opportunity")
    assert before.flagged
    assert after.difference < before.difference / 2
    assert not after.flagged
    # The re-audit measures the returned decisions (checked with scikit-learn).
    for site in ("A", "B"):
        part = rows[rows["site"] == site]
        tpr = recall_score(part["label"], part["pred_mitigated"])
        assert mitigation.after.group("site", site).metrics["tpr"].value == pytest.approx(tpr)
    assert set(mitigation.rules) == {"A", "B"}
    assert mitigation.n_val == 524


def test_equalized_odds_thresholds_shrink_the_equalised_odds_gap(biased_run) -> None:
    _, mitigation = mitigate_thresholds(
        biased_run.predictions,
        "site",
        "equalized_odds",
        prob_col=PROB,
        threshold=biased_run.threshold,
        n_bootstrap=300,
        seed=0,
    )
    before = mitigation.before.gap("site", "equalised_odds")
    after = mitigation.after.gap("site", "equalised_odds")
    assert after.difference < before.difference / 2
    record = json.loads(json.dumps(mitigation.to_dict()))  # JSON-ready
    assert record["constraint"] == "equalized_odds" and record["fitted_on"] == "val"


def test_audit_run_writes_the_audit_into_the_run_folder(run_folder: Path, biased_run) -> None:
    result = audit_run(
        run_folder,
        ["sex", "age_bin", "site"],
        n_bootstrap=300,
        mitigate=["true_positive_rate_parity"],
    )
    for name in ("audit.json", "audit.csv"):
        assert (run_folder / name).is_file()
    for attribute in ("sex", "age_bin", "site"):
        for kind in ("rates", "roc"):
            png = run_folder / "plots" / f"audit_{attribute}_{kind}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(run_folder / "audit.csv")
    assert len(table) == 2 + 4 + 2  # sex F/M, age quartiles, site A/B
    # Age quartiles are cut on all val and test ages (pandas' qcut as the reference).
    df = biased_run.predictions
    quartile = pd.qcut(df["age"], 4, labels=False)[df["split"] == "test"]
    expected = np.bincount(quartile, minlength=4)
    assert table.loc[table["attribute"] == "age_bin", "n"].tolist() == expected.tolist()
    assert result.gap("site", "auc").flagged
    assert result.positive_class == "pneumonia"
    stored = json.loads((run_folder / "audit.json").read_text())
    assert stored["attributes"] == ["sex", "age_bin", "site"]
    assert "site" in stored["summary"] and isinstance(stored["summary"], str)
    assert read_audit(run_folder).to_dict() == json.loads(json.dumps(result.to_dict()))
    site_mitigation = next(m for m in stored["mitigations"] if m["attribute"] == "site")
    gaps = {g["gap"]: g for g in site_mitigation["gaps"]}
    assert gaps["equal_opportunity"]["after"] < gaps["equal_opportunity"]["before"]
    html = audit_section_html(result, run_folder)
    assert html.count("data:image/png;base64,") == 6
    assert 'class="flagged"' in html
    markdown = audit_section_markdown(result)
    assert "](plots/audit_site_rates.png)" in markdown


def test_audit_run_names_a_missing_group_column(run_folder: Path) -> None:
    with pytest.raises(InputError) as caught:
        audit_run(run_folder, ["scanner"], n_bootstrap=0, plots=False)
    message = str(caught.value)
    assert "predictions.csv" in message and "'scanner'" in message
    assert "site" in message and "sex" in message  # the available columns are listed
    assert not (run_folder / "audit.json").exists()
