"""The names of a run folder's files: one list, used by every writer and reader.

runs/<name>/
  config.yaml         the resolved config (every default written out)
  model.pt            best weights (+ last.pt while training, for --resume)
  model.joblib        a classical run's fitted scikit-learn pipeline
  preprocessing.json  the deterministic transforms replayed at inference
  labels.json         class names; the threshold and the refer band chosen on validation
  calibration.json    the calibrator fitted on validation (temperature...), replayed by
                      every verb that applies the run
  ood.npz             the out-of-distribution score's arrays and threshold (classification)
  metrics.json        every metric with its CI, per split
  predictions.csv     one row per validation and test case (classification)
  segmentation_metrics.csv  one row per case, split and class (segmentation)
  detections.csv      one row per validation and test detection (detection); detections.json
                      the same per image, with instance masks as COCO RLE
  detection_images.csv  one row per validation and test image: objects, findings, F1
  counts.csv          reference and detected objects per image and class (detection)
  masks/              the predicted test masks (segmentation)
  history.csv         one row per epoch
  data_summary.json   cases per split and class; files skipped
  plots/              figures of the report
  sections/           later verbs' findings (fairness, explanations) as HTML + Markdown
  report.html, model_card.md   what a person reads
"""

from __future__ import annotations

CONFIG = "config.yaml"
MODEL = "model.pt"
LAST = "last.pt"
ESTIMATOR = "model.joblib"
PREPROCESSING = "preprocessing.json"
LABELS = "labels.json"
CALIBRATION = "calibration.json"
OOD = "ood.npz"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
SEGMENTATION_METRICS = "segmentation_metrics.csv"
DETECTIONS = "detections.csv"
DETECTIONS_JSON = "detections.json"
DETECTION_IMAGES = "detection_images.csv"
COUNTS = "counts.csv"
MASKS = "masks"
HISTORY = "history.csv"
DATA_SUMMARY = "data_summary.json"
FEATURES = "features.json"
ENSEMBLE = "ensemble.json"
AUDIT = "audit.json"
EXPLANATIONS = "explanations.json"
PLOTS = "plots"
SECTIONS = "sections"
REPORT = "report.html"
MODEL_CARD = "model_card.md"
ONNX = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
GENERATOR = "generator.pt"
DISCRIMINATOR = "discriminator.pt"
FEATURE_NET = "feature_net.pt"
QUALITY = "quality.json"
#: The suffix of the folder a run is built in before it is renamed into place.
STAGING_SUFFIX = ".partial"
