"""The web page in a real browser: headless Chromium (Debian's) driven by Selenium against the
service running under uvicorn on a loopback port.

Screenshots go to the test's tmp_path, and also to ``test-artifacts/`` in the repository (or
to the folder ``$MEDLENS_ARTIFACTS`` names) when ``MEDLENS_ARTIFACTS`` is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from medlens.serve.app import create_app
from medlens.serve.auth import TokenConfig

pytestmark = pytest.mark.browser

TOKEN = "browser-test-token-0123456789"
WAIT_S = 60


@pytest.fixture(scope="module")
def service_url(pneumonia_run: Path, drive_run: Path, live_service) -> Iterator[str]:
    """The service with token auth on, served by uvicorn in a thread on a free loopback port."""
    with live_service(
        create_app([pneumonia_run, drive_run], TokenConfig.from_mapping({TOKEN: "*"}))
    ) as url:
        yield url


def _connect(driver, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, WAIT_S)
    wait.until(ec.visibility_of_element_located((By.ID, "token")))  # auth is on: asked for
    assert "needs an access token" in driver.find_element(By.ID, "error").text
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "connect").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 2)


def _choose_model(driver, name: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "model")).select_by_value(name)


def test_a_chest_xray_gets_its_decision_and_heatmap_on_the_page(
    browser, service_url: str, pneumonia_test_images: np.ndarray, tmp_path: Path, save_screenshot
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    image = tmp_path / "chest.png"
    PIL.Image.fromarray(pneumonia_test_images[2]).save(image)
    _connect(browser, service_url)
    _choose_model(browser, "pneumonia")
    browser.find_element(By.ID, "file").send_keys(str(image))
    WebDriverWait(browser, WAIT_S).until(
        ec.visibility_of_element_located((By.ID, "classification"))
    )
    decision = browser.find_element(By.ID, "decision")
    assert decision.get_attribute("data-predicted-class") in {"normal", "pneumonia"}
    assert decision.text in {"normal", "pneumonia", "refer"}  # refer: the model leans shown
    rows = browser.find_elements(By.CSS_SELECTOR, "#probabilities tbody tr")
    probabilities = [float(r.find_elements(By.TAG_NAME, "td")[1].text) for r in rows]
    assert len(probabilities) == 2 and abs(sum(probabilities) - 1.0) < 0.002
    heatmap_width = browser.execute_script(
        "const img = document.getElementById('heatmap'); return img.complete ? img.naturalWidth : 0;"
    )
    assert heatmap_width > 100  # the Grad-CAM overlay PNG decoded and shown
    assert not browser.find_element(By.ID, "error").is_displayed()
    shot = save_screenshot(browser, tmp_path, "web_page_classification.png")
    assert PIL.Image.open(shot).size[0] > 0


def test_a_retina_gets_its_vessel_mask_over_the_image_with_an_opacity_slider(
    browser, service_url: str, drive_dir: Path, tmp_path: Path, save_screenshot
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    image = tmp_path / "retina.png"
    with PIL.Image.open(drive_dir / "test" / "images" / "04_test.tif") as tif:
        tif.convert("RGB").save(image)
    _connect(browser, service_url)
    _choose_model(browser, "vessels")
    browser.find_element(By.ID, "file").send_keys(str(image))
    WebDriverWait(browser, WAIT_S).until(ec.visibility_of_element_located((By.ID, "segmentation")))
    size = browser.execute_script(
        "const c = document.getElementById('overlay'); return [c.width, c.height];"
    )
    assert size == [565, 584]  # the mask is drawn on the image's own grid
    count_green = """
        const slider = document.getElementById('opacity');
        slider.value = arguments[0];
        slider.dispatchEvent(new Event('input'));
        const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] === 0 && d[i + 1] === 255 && d[i + 2] === 0) n++;
        return n;"""
    opaque = browser.execute_script(count_green, 100)
    hidden = browser.execute_script(count_green, 0)
    voxels = browser.find_element(By.ID, "voxels").text
    vessel_pixels = int(voxels.split("vessel=")[1].split(",")[0])
    assert opaque == vessel_pixels > 0  # at full opacity every vessel pixel is pure green
    assert hidden < opaque  # at zero opacity the image shows through
    browser.execute_script(count_green, 50)
    save_screenshot(browser, tmp_path, "web_page_segmentation.png")
