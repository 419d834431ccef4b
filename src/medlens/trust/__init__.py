"""Knowing when not to trust a prediction: the numbers, fitted on validation only.

- ``calibrators``: post-hoc calibration of class probabilities (temperature scaling, the
  default; Dirichlet; isotonic), fitted with scikit-learn, stored as JSON, replayed in numpy;
- ``measures``: predictive entropy, mutual information and expected Dice of probabilities;
- ``refer``: the "refer to a human" band (two thresholds, or a minimum confidence);
- ``selective``: risk-coverage curves, AURC and the balanced accuracy of the kept cases;
- ``ood``: the out-of-distribution score (feature-space Mahalanobis) and its threshold.

Ground level only (numpy, scipy, scikit-learn, ``medlens.errors``): training fits these,
inference replays them, the report reads what they recorded.
"""
