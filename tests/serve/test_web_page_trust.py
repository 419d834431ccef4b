"""The web page in a real browser (headless Chromium): a referred case shows the referral and
"refer" as its decision (the model's class as its leaning), the uncertainty asked for shows
beside the decision or the mask, and an ensemble's answer says why it has no heatmap."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
import pytest

from medlens.serve.app import create_app

pytestmark = pytest.mark.browser

WAIT_S = 60


@pytest.fixture(scope="module")
def service_url(trust_runs: dict[str, Path], live_service) -> Iterator[str]:
    """The out-of-distribution run (every case flagged) on a free loopback port, no tokens."""
    with live_service(create_app([trust_runs["out_of_distribution"]])) as url:
        yield url


def test_a_flagged_case_shows_the_referral_and_its_uncertainty(
    browser, service_url: str, pneumonia_test_images: np.ndarray, tmp_path: Path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    image = tmp_path / "chest.png"
    PIL.Image.fromarray(pneumonia_test_images[1]).save(image)
    browser.get(service_url)
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 1)
    wait.until(ec.visibility_of_element_located((By.ID, "uncertainty")))
    Select(browser.find_element(By.ID, "uncertainty")).select_by_value("tta")
    mc = browser.find_element(By.CSS_SELECTOR, "#uncertainty option[value=mc_dropout]")
    assert mc.get_attribute("disabled")  # this network has no dropout
    browser.find_element(By.ID, "file").send_keys(str(image))
    wait.until(ec.visibility_of_element_located((By.ID, "classification")))
    refer = browser.find_element(By.ID, "refer")
    assert refer.is_displayed() and "out of distribution" in refer.text
    trust = browser.find_element(By.ID, "trust").text
    assert "calibrated (temperature)" in trust and "entropy" in trust and "tta" in trust
    decision = browser.find_element(By.ID, "decision")
    assert decision.text == "refer"  # not the class: a human decides
    leaning = browser.find_element(By.ID, "leaning")
    predicted = decision.get_attribute("data-predicted-class")
    assert predicted in {"normal", "pneumonia"}
    assert leaning.is_displayed() and leaning.text.startswith(f"model leans: {predicted}, p = ")


@pytest.fixture(scope="module")
def types_url(wbc_types_run: Path, live_service) -> Iterator[str]:
    """The three-class run (one refer cut per class) on a free loopback port, no tokens."""
    with live_service(create_app([wbc_types_run])) as url:
        yield url


def test_a_three_class_answer_shows_the_decided_class_cut(
    browser, types_url: str, wbc_types_run: Path, wbc_types_images: Path, tmp_path: Path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from medlens.inference.loaded_run import load_run

    run = load_run(wbc_types_run)
    cuts = run.trust.band.class_min_confidence
    assert cuts is not None
    # a test case decided for a class whose cut refers some cases (a zero cut shows no line)
    table = pd.read_csv(wbc_types_run / "predictions.csv")
    chosen = table[(table["split"] == "test") & (table["pred"].map(lambda k: cuts[k] > 0))]
    image = tmp_path / "cell.png"
    PIL.Image.open(wbc_types_images / chosen["case_id"].iloc[0]).convert("RGB").save(image)
    browser.get(types_url)
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 1)
    browser.find_element(By.ID, "file").send_keys(str(image))
    wait.until(ec.visibility_of_element_located((By.ID, "classification")))
    decision = browser.find_element(By.ID, "decision")
    predicted = decision.get_attribute("data-predicted-class")
    assert decision.text in {predicted, "refer"}
    cut = cuts[run.class_names.index(predicted)]
    trust = browser.find_element(By.ID, "trust").text
    assert f"refer when p({predicted}) is below {min(cut, 1):.3f}" in trust
    assert "refer band" not in trust  # the two-class wording does not show


@pytest.fixture(scope="module")
def vessels_url(drive_run: Path, live_service) -> Iterator[str]:
    """The 2D segmentation run on a free loopback port, no tokens."""
    with live_service(create_app([drive_run])) as url:
        yield url


def test_a_mask_shows_the_uncertainty_asked_for(
    browser, vessels_url: str, drive_dir: Path, tmp_path: Path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    image = tmp_path / "retina.png"
    with PIL.Image.open(drive_dir / "test" / "images" / "04_test.tif") as tif:
        tif.convert("RGB").save(image)
    browser.get(vessels_url)
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 1)
    wait.until(ec.visibility_of_element_located((By.ID, "uncertainty")))
    Select(browser.find_element(By.ID, "uncertainty")).select_by_value("tta")
    browser.find_element(By.ID, "file").send_keys(str(image))
    wait.until(ec.visibility_of_element_located((By.ID, "segmentation")))
    summary = browser.find_element(By.ID, "mask-uncertainty")
    assert summary.is_displayed()
    assert summary.text.startswith("Uncertainty (tta): ")
    assert "expected Dice" in summary.text and "mean mutual information" in summary.text


@pytest.fixture(scope="module")
def ensemble_url(
    pneumonia_run: Path,
    trust_runs: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    live_service,
) -> Iterator[str]:
    """An ensemble whose second member flags every case, on a free loopback port."""
    from medlens.commands.ensemble import ensemble_runs

    members = [pneumonia_run, trust_runs["out_of_distribution"]]
    out = tmp_path_factory.mktemp("ensembles")
    run = ensemble_runs(members, "soft", out, name="pair", n_bootstrap=0, documents=False)
    with live_service(create_app([run])) as url:
        yield url


def test_an_ensemble_refers_and_says_why_it_has_no_heatmap(
    browser, ensemble_url: str, pneumonia_test_images: np.ndarray, tmp_path: Path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    image = tmp_path / "chest.png"
    PIL.Image.fromarray(pneumonia_test_images[1]).save(image)
    browser.get(ensemble_url)
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 1)
    wait.until(ec.visibility_of_element_located((By.ID, "uncertainty")))
    tta = browser.find_element(By.CSS_SELECTOR, "#uncertainty option[value=tta]")
    assert tta.get_attribute("disabled")  # an ensemble samples its members, not views
    Select(browser.find_element(By.ID, "uncertainty")).select_by_value("ensemble")
    browser.find_element(By.ID, "file").send_keys(str(image))
    wait.until(ec.visibility_of_element_located((By.ID, "classification")))
    assert browser.find_element(By.ID, "decision").text == "refer"
    assert "ensemble member flags this image" in browser.find_element(By.ID, "trust").text
    assert "entropy" in browser.find_element(By.ID, "trust").text
    assert not browser.find_element(By.ID, "heatmap-figure").is_displayed()
    omitted = browser.find_element(By.ID, "heatmap-omitted")
    assert omitted.is_displayed() and "no single network to explain" in omitted.text
