"""The web page in a real browser (headless Chromium): a referred case shows the referral and
"refer" as its decision (the model's class as its leaning), the uncertainty asked for shows
beside the decision or the mask (a 2D mask with its entropy map, a volume's maps as NIfTI
downloads), and an ensemble's answer says why it has no heatmap."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
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
    browser, vessels_url: str, drive_dir: Path, tmp_path: Path, save_screenshot
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
    # the entropy map under the mask, on the image's own grid, its scale in the caption
    assert browser.find_element(By.ID, "entropy-figure").is_displayed()
    shown = browser.execute_script(
        """const img = document.getElementById('entropy-map');
        if (!img.complete || img.naturalWidth === 0) return null;
        const c = document.createElement('canvas');
        c.width = img.naturalWidth;
        c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let sum = 0;
        for (let i = 0; i < d.length; i += 4) sum += d[i];
        return [img.naturalWidth, img.naturalHeight, sum / (d.length / 4)];"""
    )
    assert shown is not None and shown[:2] == [565, 584]
    caption = browser.find_element(By.ID, "entropy-caption").text
    assert caption.startswith("Predictive entropy of each pixel (tta): black = 0 nats")
    assert "white = 0.693 nats = log 2" in caption
    # what the page draws is the map's scale: its mean grey is the summary's mean entropy
    mean_entropy = float(summary.text.split("mean entropy ")[1].split(" nats")[0])
    assert shown[2] / 255 * np.log(2) == pytest.approx(mean_entropy, abs=0.003)
    links = browser.find_elements(By.CSS_SELECTOR, "#map-downloads a")
    names = [link.get_attribute("download") for link in links]
    assert names == ["entropy.png", "mutual_information.png"]
    assert all(link.get_attribute("href").startswith("blob:") for link in links)
    browser.execute_script("document.getElementById('entropy-figure').scrollIntoView()")
    save_screenshot(browser, tmp_path, "web_page_segmentation_uncertainty.png")


@pytest.fixture(scope="module")
def liver_url(ct_run: Path, live_service) -> Iterator[str]:
    """The 3D segmentation run on a free loopback port, no tokens."""
    with live_service(create_app([ct_run])) as url:
        yield url


def test_a_volume_offers_its_uncertainty_maps_as_nifti_downloads(
    browser, liver_url: str, ct_dir: Path, tmp_path: Path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from medlens.data.dicom_series import read_dicom_series

    series = read_dicom_series(ct_dir)
    volume = tmp_path / "ct.nii.gz"
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    nib.save(nib.Nifti1Image(series.array[0].astype(np.int16), lps_to_ras @ series.affine), volume)
    browser.get(liver_url)
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 1)
    wait.until(ec.visibility_of_element_located((By.ID, "uncertainty")))
    Select(browser.find_element(By.ID, "uncertainty")).select_by_value("tta")
    browser.find_element(By.ID, "file").send_keys(str(volume))
    wait.until(ec.visibility_of_element_located((By.ID, "segmentation")))
    assert browser.find_element(By.ID, "mask-uncertainty").is_displayed()
    assert not browser.find_element(By.ID, "entropy-figure").is_displayed()  # no image
    downloads = browser.find_element(By.ID, "map-downloads")
    assert downloads.is_displayed() and "NIfTI files (float32, in nats" in downloads.text
    links = downloads.find_elements(By.TAG_NAME, "a")
    names = [link.get_attribute("download") for link in links]
    assert names == ["entropy.nii.gz", "mutual_information.nii.gz"]
    # a click saves the file (the page's CSP forbids fetching it back; a download is not a fetch)
    saved = tmp_path / "downloads"
    saved.mkdir()
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(saved)}
    )
    links[0].click()
    WebDriverWait(browser, WAIT_S).until(lambda _: (saved / "entropy.nii.gz").exists())
    entropy = nib.load(saved / "entropy.nii.gz")
    assert entropy.shape == (3, 512, 512)  # the volume's grid
    assert np.asarray(entropy.dataobj).dtype == np.float32
