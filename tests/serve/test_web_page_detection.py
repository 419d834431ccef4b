"""The web page in a real browser (headless Chromium): a blood smear sent to a detection run
comes back with its boxes drawn over the image in each class's colour, and a count table.

Screenshots go to the test's tmp_path, and also to ``test-artifacts/`` in the repository (or
to the folder ``$MEDLENS_ARTIFACTS`` names) when ``MEDLENS_ARTIFACTS`` is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import PIL.Image
import pytest

from medlens.serve.app import create_app

pytestmark = pytest.mark.browser

WAIT_S = 60


@pytest.fixture(scope="module")
def service_url(cells_run: Path, live_service) -> Iterator[str]:
    """The detection run on a free loopback port, no tokens."""
    with live_service(create_app([cells_run])) as url:
        yield url


def test_a_blood_smear_gets_its_boxes_drawn_and_counted(
    browser, service_url: str, shared_data: Path, tmp_path: Path, save_screenshot
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    source = shared_data / "bccd_blood_cells" / "BCCD"
    image_id = (source / "ImageSets" / "Main" / "test.txt").read_text().split()[-1]
    smear = source / "JPEGImages" / f"{image_id}.jpg"
    answer = httpx.post(
        f"{service_url}/v1/detect", files={"file": ("smear.jpg", smear.read_bytes())}, timeout=60
    ).json()
    assert answer["detections"], "the tiny run finds nothing on this smear: pick another"

    browser.get(service_url)
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 1)
    browser.find_element(By.ID, "file").send_keys(str(smear))
    wait.until(ec.visibility_of_element_located((By.ID, "detection")))

    # one box per finding, where the service puts it, in its class's colour
    drawn = browser.execute_script(
        """return [...document.querySelectorAll('#boxes rect.box')].map((r) => [
            r.parentNode.dataset.class, r.getAttribute('stroke'),
            ['x', 'y', 'width', 'height'].map((k) => Number(r.getAttribute(k)))]);"""
    )
    assert len(drawn) == len(answer["detections"])
    colour_of: dict[str, str] = {}
    for (name, colour, (x, y, w, h)), found in zip(drawn, answer["detections"], strict=True):
        assert name == found["class"]
        assert colour_of.setdefault(name, colour) == colour  # one colour per class
        assert (x, y) == pytest.approx((found["x1"], found["y1"]), abs=1e-3)
        assert (x + w, y + h) == pytest.approx((found["x2"], found["y2"]), abs=1e-3)
    assert len(set(colour_of.values())) == len(colour_of)  # and a different one for each
    view_box = browser.execute_script(
        "return document.getElementById('boxes').getAttribute('viewBox');"
    )
    assert view_box == "0 0 640 480"  # drawn on the image's own pixels
    shown = browser.execute_script(
        "const r = document.querySelector('#boxes image').getBoundingClientRect();"
        "return [r.width, r.height];"
    )
    assert shown[0] > 100 and shown[1] > 50  # the smear itself is under the boxes

    # the count table: a row per class, counts equal to the boxes of that class
    rows = browser.find_elements(By.CSS_SELECTOR, "#counts tbody tr")
    counts = {
        r.find_elements(By.TAG_NAME, "td")[1].text: int(r.find_elements(By.TAG_NAME, "td")[2].text)
        for r in rows
    }
    assert list(counts) == answer["class_names"] and counts == answer["counts"]
    assert sum(counts.values()) == len(drawn)
    assert not browser.find_element(By.ID, "error").is_displayed()
    shot = save_screenshot(browser, tmp_path, "web_page_detection.png")
    assert PIL.Image.open(shot).size[0] > 0
