"""The web page in a real browser (headless Chromium): a blood smear sent to a detection run
comes back with its boxes drawn over the image in each class's colour, and a count table; a
white blood cell sent to a Mask R-CNN run also gets each instance mask painted, translucent,
in its box's colour, under the boxes.

Screenshots go to the test's tmp_path, and also to ``test-artifacts/`` in the repository (or
to the folder ``$MEDLENS_ARTIFACTS`` names) when ``MEDLENS_ARTIFACTS`` is set.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import PIL.Image
import pytest
from scipy.ndimage import binary_dilation, binary_erosion

from medlens.data.boxes.rle import decode_rle
from medlens.serve.app import create_app

pytestmark = pytest.mark.browser

WAIT_S = 60


@pytest.fixture(scope="module")
def service_url(cells_run: Path, live_service) -> Iterator[str]:
    """The detection run on a free loopback port, no tokens."""
    with live_service(create_app([cells_run])) as url:
        yield url


def _detect_and_show(browser, url: str, image: Path) -> dict:
    """The service's answer for ``image`` (at least one detection), then the page at ``url``
    with the same image uploaded and its detection panel shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    answer = httpx.post(
        f"{url}/v1/detect", files={"file": (image.name, image.read_bytes())}, timeout=60
    ).json()
    assert answer["detections"], f"the tiny run finds nothing in {image.name}: pick another"
    browser.get(url)
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 1)
    browser.find_element(By.ID, "file").send_keys(str(image))
    wait.until(ec.visibility_of_element_located((By.ID, "detection")))
    return answer


def test_a_blood_smear_gets_its_boxes_drawn_and_counted(
    browser, service_url: str, shared_data: Path, tmp_path: Path, save_screenshot
):
    from selenium.webdriver.common.by import By

    source = shared_data / "bccd_blood_cells" / "BCCD"
    image_id = (source / "ImageSets" / "Main" / "test.txt").read_text().split()[-1]
    smear = source / "JPEGImages" / f"{image_id}.jpg"
    answer = _detect_and_show(browser, service_url, smear)

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


@pytest.fixture(scope="module")
def masks_url(wbc_mask_run: Path, live_service) -> Iterator[str]:
    """The Mask R-CNN run on a free loopback port, no tokens."""
    with live_service(create_app([wbc_mask_run])) as url:
        yield url


def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[k : k + 2], 16) for k in (1, 3, 5)], dtype=np.float64)


def test_instance_masks_are_painted_translucent_under_their_boxes(
    browser,
    masks_url: str,
    wbc_test_image: np.ndarray,
    png_bytes,
    tmp_path: Path,
    save_screenshot,
):
    from selenium.webdriver.common.by import By

    image = tmp_path / "wbc.png"
    image.write_bytes(png_bytes(wbc_test_image))
    height, width = wbc_test_image.shape[:2]
    answer = _detect_and_show(browser, masks_url, image)
    masks = [decode_rle(found["mask"], "answer") for found in answer["detections"]]
    union = np.logical_or.reduce(masks)
    assert union.any()

    # one mask layer, between the image and the boxes, in each box's colour where the masks are
    order = browser.execute_script(
        "return [...document.getElementById('boxes').children].map("
        "(e) => e.getAttribute('class') || e.tagName);"
    )
    assert order == ["image", "masks", *["detection"] * len(answer["detections"])]
    colours = browser.execute_script(
        "return [...document.querySelectorAll('#boxes rect.box')].map("
        "(r) => r.getAttribute('stroke'));"
    )
    href = browser.execute_script(
        "return document.querySelector('#boxes image.masks').getAttribute('href');"
    )
    assert href.startswith("data:image/png;base64,")
    layer = np.asarray(
        PIL.Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))).convert("RGBA")
    )
    assert layer.shape == (height, width, 4)
    np.testing.assert_array_equal(layer[..., 3] > 0, union)  # the JS decoder's pixels exactly
    for mask, colour in zip(masks, colours, strict=True):  # one class: one colour
        np.testing.assert_array_equal(layer[mask][:, :3], np.tile(_rgb(colour), (mask.sum(), 1)))
    areas = browser.execute_script(
        "return [...document.querySelectorAll('#boxes g.detection')].map("
        "(g) => Number(g.dataset.maskArea));"
    )
    assert areas == [found["mask_area_px"] for found in answer["detections"]]

    # on screen: the mask tints the image towards its colour, and nothing outside the boxes
    opacity = float(
        browser.execute_script(
            "return getComputedStyle(document.querySelector('#boxes image.masks')).opacity;"
        )
    )
    assert 0.2 <= opacity <= 0.8
    svg = browser.find_element(By.ID, "boxes")
    browser.execute_script(
        "document.querySelectorAll('#boxes g.detection').forEach((g) => g.style.display = 'none');"
    )
    painted = np.asarray(PIL.Image.open(io.BytesIO(svg.screenshot_as_png)).convert("RGB"), float)
    browser.execute_script("document.querySelector('#boxes image.masks').style.display = 'none';")
    plain = np.asarray(PIL.Image.open(io.BytesIO(svg.screenshot_as_png)).convert("RGB"), float)
    browser.execute_script("document.querySelector('#boxes image.masks').style.display = '';")
    browser.execute_script(
        "document.querySelectorAll('#boxes g.detection').forEach((g) => g.style.display = '');"
    )
    assert painted.shape == plain.shape
    border = float(
        browser.execute_script(
            "return getComputedStyle(arguments[0]).borderTopWidth;", svg
        ).removesuffix("px")
    )
    scale = (painted.shape[1] - 2 * border) / width  # screen pixels per image pixel

    def on_screen(rows: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Screen pixels of image pixel centres."""
        return (
            np.floor(border + (rows + 0.5) * scale).astype(int),
            np.floor(border + (columns + 0.5) * scale).astype(int),
        )

    inside = binary_erosion(union, iterations=1)
    assert inside.any()
    rows, columns = on_screen(*np.nonzero(inside))
    colour = _rgb(colours[0])
    expected = plain[rows, columns] * (1 - opacity) + colour * opacity
    assert np.abs(painted[rows, columns] - expected).max() <= 8
    assert np.abs(painted[rows, columns] - plain[rows, columns]).max() > 20
    boxed = np.zeros_like(union)
    for found in answer["detections"]:
        x1, y1 = int(np.floor(found["x1"])), int(np.floor(found["y1"]))
        boxed[y1 : int(np.ceil(found["y2"])), x1 : int(np.ceil(found["x2"]))] = True
    outside = ~binary_dilation(boxed, iterations=2)
    assert outside.any()
    rows, columns = on_screen(*np.nonzero(outside))
    np.testing.assert_array_equal(painted[rows, columns], plain[rows, columns])
    save_screenshot(browser, tmp_path, "web_page_detection_masks.png")
