"""Subgroup (fairness) audits of a run's test predictions, and mitigations.

- ``audit_predictions`` / ``audit_run``: per-group AUC, TPR, FPR, PPV, selection rate and
  calibration with bootstrap intervals; equal-opportunity, equalised-odds, demographic-parity
  and AUC gaps between groups, flagged when their interval excludes 0.
- ``mitigate_thresholds``: per-group thresholds (fairlearn ``ThresholdOptimizer``) fitted on
  validation, measured on test; ``group_sample_weights``: reweighting for training.
- ``audit_section_html`` / ``audit_section_markdown``: the audit in report.html and
  model_card.md.
"""

from medlens.audit.binning import age_bin
from medlens.audit.calibration_fit import calibration_slope_intercept
from medlens.audit.result import AuditResult, Estimate, Gap, GroupMetrics
from medlens.audit.reweighting import group_sample_weights
from medlens.audit.run_audit import audit_run, read_audit
from medlens.audit.section import audit_section_html, audit_section_markdown
from medlens.audit.subgroup_audit import audit_predictions
from medlens.audit.threshold_mitigation import ThresholdMitigation, mitigate_thresholds

__all__ = [
    "AuditResult",
    "Estimate",
    "Gap",
    "GroupMetrics",
    "ThresholdMitigation",
    "age_bin",
    "audit_predictions",
    "audit_run",
    "audit_section_html",
    "audit_section_markdown",
    "calibration_slope_intercept",
    "group_sample_weights",
    "mitigate_thresholds",
    "read_audit",
]
