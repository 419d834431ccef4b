"""medlens' COCO AP and AR equal pycocotools' on the same frozen detections (to 1e-6),
boxes and masks, including an image without detections, an image without reference objects,
crowd regions, a class without reference objects and tied scores."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest

from medlens.data.boxes.rle import encode_mask
from medlens.metrics.detection import DetectedObjects, ReferenceObjects, ap_metrics, match_images

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

H, W = 48, 64
CLASSES = ["a", "b", "c", "d"]  # "d" has detections but no reference object


def _box_mask(box: np.ndarray) -> np.ndarray:
    """The ellipse inscribed in the box: mask IoU then differs from box IoU."""
    x1, y1, x2, y2 = box
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    rx, ry = max((x2 - x1) / 2, 0.5), max((y2 - y1) / 2, 0.5)
    return ((xx - (x1 + x2) / 2) / rx) ** 2 + ((yy - (y1 + y2) / 2) / ry) ** 2 <= 1.0


def _random_box(rng: np.random.Generator) -> np.ndarray:
    w, h = rng.uniform(4, 24), rng.uniform(4, 20)
    x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
    return np.array([x, y, x + w, y + h])


def frozen_set(
    seed: int = 7, n_images: int = 14
) -> tuple[list[ReferenceObjects], list[DetectedObjects]]:
    """Seeded (so frozen) references and detections with every edge case in it."""
    rng = np.random.default_rng(seed)
    refs, dets = [], []
    for i in range(n_images):
        n_ref = 0 if i == 1 else int(rng.integers(1, 7))  # image 1: no reference objects
        boxes = np.array([_random_box(rng) for _ in range(n_ref)]).reshape(-1, 4)
        boxes = np.round(boxes)  # whole pixels, so box and mask IoU agree in kind
        labels = rng.integers(0, 3, size=n_ref)
        crowd = rng.random(n_ref) < 0.15
        masks = np.stack([_box_mask(b) for b in boxes]) if n_ref else np.zeros((0, H, W), bool)
        refs.append(ReferenceObjects.of(boxes, labels, crowd, masks, image_id=f"img{i}"))
        det_boxes, det_labels = [], []
        if i != 2:  # image 2: no detections
            for b, lab in zip(boxes, labels, strict=True):
                if rng.random() < 0.8:
                    det_boxes.append(b + rng.normal(0, 1.0, 4))
                    det_labels.append(lab if rng.random() < 0.9 else (lab + 1) % 3)
            for _ in range(int(rng.integers(0, 4))):  # false positives, some of class "d"
                det_boxes.append(_random_box(rng))
                det_labels.append(int(rng.integers(0, 4)))
        det_boxes_arr = np.array(det_boxes).reshape(-1, 4)
        det_boxes_arr[:, [0, 2]] = det_boxes_arr[:, [0, 2]].clip(0, W)
        det_boxes_arr[:, [1, 3]] = det_boxes_arr[:, [1, 3]].clip(0, H)
        det_boxes_arr = np.round(det_boxes_arr)
        keep = (det_boxes_arr[:, 2] > det_boxes_arr[:, 0]) & (
            det_boxes_arr[:, 3] > det_boxes_arr[:, 1]
        )
        det_boxes_arr = det_boxes_arr[keep]
        det_labels_arr = np.array(det_labels, dtype=int)[keep] if det_labels else np.zeros(0, int)
        scores = np.round(rng.random(len(det_boxes_arr)), 2)  # two decimals: ties happen
        det_masks = (
            np.stack([_box_mask(b) for b in det_boxes_arr])
            if len(det_boxes_arr)
            else np.zeros((0, H, W), bool)
        )
        dets.append(
            DetectedObjects.of(det_boxes_arr, scores, det_labels_arr, det_masks, image_id=f"img{i}")
        )
    return refs, dets


def _coco_documents(
    refs: list[ReferenceObjects], dets: list[DetectedObjects], segm: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    gt: dict[str, Any] = {
        "images": [
            {"id": i + 1, "width": W, "height": H, "file_name": f"{i}.png"}
            for i in range(len(refs))
        ],
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)],
        "annotations": [],
    }
    results = []
    for i, (r, d) in enumerate(zip(refs, dets, strict=True)):
        for b, lab, c, m in zip(r.boxes, r.labels, r.crowd, r.masks, strict=True):
            ann = {
                "id": len(gt["annotations"]) + 1,
                "image_id": i + 1,
                "category_id": int(lab) + 1,
                "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                "area": float(m.sum() if segm else (b[2] - b[0]) * (b[3] - b[1])),
                "iscrowd": int(c),
            }
            if segm:
                ann["segmentation"] = encode_mask(m)
            gt["annotations"].append(ann)
        for b, s, lab, m in zip(d.boxes, d.scores, d.labels, d.masks, strict=True):
            result = {"image_id": i + 1, "category_id": int(lab) + 1, "score": float(s)}
            if segm:
                result["segmentation"] = encode_mask(m)
            else:
                result["bbox"] = [b[0], b[1], b[2] - b[0], b[3] - b[1]]
            results.append(result)
    return gt, results


def _pycocotools(gt: dict[str, Any], results: list[dict[str, Any]], iou_type: str) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


def _per_class_ap(evaluation: COCOeval, t: int | None) -> list[float]:
    precision = evaluation.eval["precision"][:, :, :, 0, 2]  # area all, 100 detections
    out = []
    for k in range(precision.shape[2]):
        p = precision[:, :, k] if t is None else precision[t, :, k]
        p = p[p > -1]
        out.append(float(p.mean()) if p.size else float("nan"))
    return out


@pytest.mark.parametrize("seed", [7, 11])
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_equal_to_pycocotools(seed: int, iou_type: str) -> None:
    refs, dets = frozen_set(seed)
    assert any(len(d.labels) == 0 for d in dets) and any(len(r.labels) == 0 for r in refs)
    assert any(r.crowd.any() for r in refs)
    segm = iou_type == "segm"
    reference = _pycocotools(*_coco_documents(refs, dets, segm), iou_type)
    matches = match_images(dets, refs, len(CLASSES), use_masks=segm)
    ours = ap_metrics(matches, len(CLASSES))
    stats = reference.stats
    np.testing.assert_allclose(
        [ours["overall"][k] for k in ("map", "map50", "map75", "ar100")],
        [stats[0], stats[1], stats[2], stats[8]],
        atol=1e-6,
    )
    for t, key in ((None, "ap"), (0, "ap50"), (5, "ap75")):
        np.testing.assert_allclose(
            [c[key] for c in ours["per_class"]], _per_class_ap(reference, t), atol=1e-6
        )
    assert np.isnan(ours["per_class"][3]["ap"])  # class "d": detections, no reference


def test_no_detections_at_all_is_zero_ap() -> None:
    # pycocotools cannot load an empty result list; COCO's definition gives 0 for every class
    # with reference objects.
    refs, dets = frozen_set(3, n_images=4)
    empty = [DetectedObjects.empty(d.image_id) for d in dets]
    ours = ap_metrics(match_images(empty, refs, len(CLASSES)), len(CLASSES))
    assert ours["overall"]["map"] == 0.0 and ours["overall"]["ar100"] == 0.0
