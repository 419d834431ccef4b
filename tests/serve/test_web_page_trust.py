"""The web page in a real browser (headless Chromium): a referred case shows the referral, and
the uncertainty asked for shows beside the decision."""

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
    assert browser.find_element(By.ID, "decision").text in {"normal", "pneumonia"}


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
    decision = browser.find_element(By.ID, "decision").text
    cut = cuts[run.class_names.index(decision)]
    trust = browser.find_element(By.ID, "trust").text
    assert f"refer when p({decision}) is below {min(cut, 1):.3f}" in trust
    assert "refer band" not in trust  # the two-class wording does not show
