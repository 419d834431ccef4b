"""What the report and the model card say about trusting a prediction, from ``metrics.json``'s
``trust`` record: calibration before and after, the refer band and what it kept, selective
prediction (AURC, balanced accuracy by coverage) and the out-of-distribution flags."""

from __future__ import annotations

from typing import Any

from medlens.report.figures import SPLIT_TITLES
from medlens.report.formatting import MISSING, format_value
from medlens.report.markdown import escape_markdown, markdown_table
from medlens.run_folder.classification import RunFolder

_ORDER = {"val": 0, "test": 1}
#: What the report and the model card say of a run without an out-of-distribution score.
NO_OOD_TEXT = (
    "This run has no out-of-distribution score: inputs unlike the training images are not flagged."
)


def _splits(record: dict[str, Any]) -> list[str]:
    return sorted(record, key=lambda s: _ORDER.get(s, 2))


def describe_calibrator(calibration: dict[str, Any], ensemble: bool = False) -> str:
    """One sentence: the calibrator and what it was fitted on (for an ``ensemble``, also that
    its members' own calibrators come first), and a warning when a bcts fit ended on a bound
    of its search (``at_bound``)."""
    method = calibration.get("method", "none")
    at_bound = calibration.get("at_bound") or []
    warning = (
        f" Its fit ended on the bound of its search for {', '.join(map(str, at_bound))}: the "
        "validation split is (nearly) separable, or too small, and these probabilities will "
        "be extreme; read them with caution."
        if at_bound
        else ""
    )
    if ensemble:
        members = (
            "Each member's probabilities are calibrated by that member's own calibrator (its "
            "calibration.json) before they are combined, so the 'before' columns below are "
            "the combination of calibrated members."
        )
        if method == "none":
            return f"{members} The combination is not calibrated again (--calibration none)."
        return (
            f"{members} The combination is calibrated again by {_calibrator_name(calibration)}"
            f", fitted on the ensemble's validation probabilities only (--calibration "
            f"{method}).{warning}"
        )
    if method == "none":
        return "The probabilities are not calibrated after training (calibration.method: none)."
    return (
        f"The probabilities are calibrated by {_calibrator_name(calibration)}, fitted on the "
        "validation split only; every later use of the run (predict, serve, PACS, ensembles) "
        f"applies it.{warning}"
    )


def _calibrator_name(calibration: dict[str, Any]) -> str:
    """The calibrator and its parameters, as a sentence names it."""
    method = calibration.get("method", "none")
    unit = " per voxel" if calibration.get("unit") == "voxel" else ""
    what = {
        "temperature": f"temperature scaling{unit} (T = {format_value(calibration.get('temperature'))})",
        "bcts": f"bias-corrected temperature scaling (T = {format_value(calibration.get('temperature'))}, "
        f"bias {', '.join(format_value(b) for b in calibration.get('bias') or [])})",
        "dirichlet": "Dirichlet calibration (a logistic regression on log-probabilities)",
        "isotonic": "isotonic regression",
    }.get(method, method)
    return what


def describe_comparison(calibration: dict[str, Any]) -> str:
    """One sentence: how the run's calibrator compares on held-out validation cases with the
    others (``""`` when the run recorded no comparison)."""
    compared = calibration.get("compared_on_val")
    if not isinstance(compared, dict):
        return ""
    if "skipped" in compared:
        return f"Calibrators were not compared on validation: {compared['skipped']}."
    scores, best = compared["scores"], compared["best"]
    configured = compared.get("configured", calibration.get("method", "none"))
    losses = "; ".join(
        f"{method} {format_value(values['log_loss'], 3)}" for method, values in scores.items()
    )
    text = (
        "Log loss of each calibrator on validation cases it was not fitted on (5-fold "
        f"cross-fitting; lower is better): {losses}."
    )
    if best == configured or configured not in scores:
        return text
    gap = float(scores[configured]["log_loss"]) - float(scores[best]["log_loss"])
    if gap < _LEVEL:
        return (
            f"{text} The {configured} this run applies is level with the lowest ({best}) to "
            "the precision shown."
        )
    applied = (
        "this run's uncalibrated probabilities"
        if configured == "none"
        else f"the {configured} this run applies"
    )
    return (
        f"{text} {best} is lower than {applied}{_WHY_LOWER.get(best, '')}. The choice stays "
        f"yours (calibration.method: {best}): on a test split that differs from validation "
        "it may do worse, see docs/uncertainty.md."
    )


#: Log-loss differences below this are shown as level (the table prints 3 decimals).
_LEVEL = 0.0005
#: What a calibrator can do that the others cannot, said when it has the lowest log loss.
_WHY_LOWER = {
    "bcts": " (its bias per class can move probabilities a temperature alone cannot)",
    "dirichlet": (
        " (a logistic regression on the log-probabilities, with a bias per class, can "
        "reshape them as a single temperature cannot; it may reorder cases)"
    ),
    "isotonic": " (a monotone step function; its steps tie cases and may change the AUC)",
    "temperature": " (one temperature, which keeps every ranking)",
}


def describe_band(band: dict[str, Any], class_names: list[str]) -> str:
    """One sentence: which cases the refer band sends to a human."""
    rule, targets = band.get("rule", "none"), band.get("targets") or {}
    if rule == "none":
        return "No refer band: every case gets the model's decision."
    if band.get("low") is not None and band.get("high") is not None:
        low, high = float(band["low"]), min(float(band["high"]), 1.0)
        if high <= low:
            where = "is empty: one threshold met the targets"
        else:
            where = f"refers cases with p({class_names[1]}) in [{low:.4g}, {high:.4g})"
    elif band.get("class_min_confidence") is not None:
        below = ", ".join(
            f"p({name}) < {format_value(min(float(v), 1.0))}"
            for name, v in zip(class_names, band["class_min_confidence"], strict=True)
        )
        where = f"refers a case decided a class when its probability of that class is low: {below}"
    else:
        where = f"refers cases whose largest probability is below {format_value(band.get('min_confidence'))}"
    aim = ", ".join(f"{k} {format_value(v)}" for k, v in targets.items())
    return f"The refer band (rule {rule}: {aim}, chosen on validation) {where}."


def describe_referral(band: dict[str, Any], class_names: list[str], flags_ood: bool) -> str:
    """Which cases go to a human: the refer band's sentence (``describe_band``) and, only
    when the run has an out-of-distribution score (``flags_ood``), that a flagged case is
    referred as well."""
    if not flags_ood:
        return describe_band(band, class_names)
    if band.get("rule", "none") == "none":
        return (
            "No refer band: every case gets the model's decision, unless it is flagged out of "
            "distribution, which refers it to a human."
        )
    return describe_band(band, class_names) + " A case flagged out of distribution is referred too."


def _describe_member_ood(member: dict[str, Any]) -> str:
    name = member.get("name") or member.get("run")
    if isinstance(member.get("members"), list):
        return f"{name} flags a case when any of its own members does"
    rate = member.get("false_alarm_rate")
    share = ""
    if rate is not None:
        share = f", a threshold set to flag {100 * float(rate):.0f}% of its validation cases"
    return (
        f"{name} ({member.get('score')}) flags a case above "
        f"{format_value(member.get('threshold'), 4)}{share}"
    )


def describe_ood(ood: dict[str, Any]) -> str:
    """One or two sentences: the out-of-distribution score and its threshold, or, for an
    ensemble (``ood["members"]``), the rule that ORs its members' flags and each member's
    threshold and false-alarm rate."""
    members = ood.get("members")
    if isinstance(members, list):
        text = (
            "Out-of-distribution flags: a case is flagged, and referred, when any member run "
            "flags it (ood_score: how many members flag it). "
            + "; ".join(_describe_member_ood(m) for m in members if isinstance(m, dict))
            + "."
        )
        without = ood.get("members_without_score") or []
        if without:
            text += f" Without an out-of-distribution score: {', '.join(map(str, without))}."
        return text
    return (
        f"Out-of-distribution score: {ood.get('score')} (smallest Mahalanobis distance of "
        f"the penultimate features to a training class mean, {ood.get('dims')} "
        f"dimensions); a case above {format_value(ood.get('threshold'), 4)} is flagged "
        f"and referred, a threshold set to flag "
        f"{100 * float(ood.get('false_alarm_rate', 0)):.0f}% of the validation cases."
    )


def describe_prior_shift(
    shift: dict[str, Any] | None, class_names: list[str], calibrated: bool = True
) -> str:
    """One sentence: the test split's class mix as estimated without its labels against its
    true mix, and the calibration after adapting to the estimate ("" when not recorded)."""
    if not isinstance(shift, dict):
        return ""
    if "skipped" in shift:
        return f"The test split's class mix was not estimated: {shift['skipped']}."
    shown = class_names[1:] if len(class_names) == 2 else class_names

    def mix(key: str) -> str:
        return ", ".join(f"{name} {100 * float(shift[key][name]):.1f}%" for name in shown)

    interval = shift.get("target_prior_95ci") or {}
    ci = "; ".join(
        f"{name} {100 * float(interval[name][0]):.1f}-{100 * float(interval[name][1]):.1f}%"
        for name in shown
        if name in interval
    )
    caution = (
        f" The estimate is not to be relied on: {shift['warning']}." if shift.get("warning") else ""
    )
    truth = shift.get("true_prior") or {}
    missed = [
        name
        for name in shown
        if name in interval and name in truth
        and not interval[name][0] <= float(truth[name]) <= interval[name][1]
    ]  # fmt: skip
    if missed:
        caution += (
            " The interval misses the true mix: more than the class mix changed between "
            "validation and test, and the adaptation, which assumes only the mix changed, "
            "cannot be trusted here."
        )
    left_out = int(shift.get("out_of_distribution_left_out") or 0)
    cases = (
        f", from its {shift.get('n_cases', MISSING)} cases not flagged out of distribution "
        f"({left_out} flagged, left out)"
        if left_out
        else ""
    )
    among = "among them it" if left_out else "it"
    whose = "calibrated probabilities" if calibrated else "run's probabilities (uncalibrated)"
    before = (
        f" (before adapting: {format_value(shift['ece_calibrated'], 4)} and "
        f"{format_value(shift.get('brier_calibrated'), 4)})"
        if shift.get("ece_calibrated") is not None
        else ""
    )
    return (
        "A new site's class mix may differ from validation's. Read as one batch from a new "
        f"site, without its labels, the test split's class mix is estimated at {mix('target_prior')}"
        f" (95% bootstrap interval {ci}){cases}; {among} truly is {mix('true_prior')}, and the "
        f"{whose} assume {mix('source_prior')}. Adapted to the estimate, the test "
        f"probabilities' ECE is {format_value(shift.get('ece_adapted'), 4)} and Brier "
        f"{format_value(shift.get('brier_adapted'), 4)}{before}; decisions are unchanged "
        "(medlens predict --adapt-prior does this for a batch of new images)." + caution
    )


def trust_context(run: RunFolder) -> dict[str, Any] | None:
    """The report's trust section, or None for a run that recorded none."""
    trust = run.metrics.get("trust")
    if not isinstance(trust, dict):
        return None
    calibration = trust.get("calibration") or {}
    ensemble = run.metrics.get("kind") == "ensemble"  # its members' calibrators came first
    cal_rows = [
        {
            "split": SPLIT_TITLES.get(split, split),
            "is_test": split == "test",
            **{k: format_value(v, 4) for k, v in values.items()},
        }
        for split, values in (
            (s, calibration["splits"][s]) for s in _splits(calibration.get("splits", {}))
        )
    ]
    refer = trust.get("refer") or {}
    refer_rows = [
        {
            "split": SPLIT_TITLES.get(split, split),
            "is_test": split == "test",
            "n": r["n"],
            "referred": r["referred"],
            "coverage": format_value(r["coverage"]),
            "all": format_value(r["balanced_accuracy_all"]),
            "kept": format_value(r["balanced_accuracy_kept"]),
        }
        for split, r in ((s, refer["splits"][s]) for s in _splits(refer.get("splits", {})))
    ]
    selective = trust.get("selective") or {}
    coverage_split = "test" if "test" in selective else next(iter(selective), None)
    ood = trust.get("ood")
    return {
        "calibration_text": describe_calibrator(calibration, ensemble=ensemble),
        "comparison_text": describe_comparison(calibration),
        "calibration_rows": cal_rows,
        "prior_shift_text": describe_prior_shift(
            calibration.get("prior_shift"),
            run.class_names,
            calibrated=calibration.get("method", "none") != "none" or ensemble,
        ),
        "band_text": describe_band(refer.get("band") or {}, run.class_names),
        "refer_text": describe_referral(
            refer.get("band") or {}, run.class_names, isinstance(ood, dict)
        ),
        "refer_rows": refer_rows,
        "aurc_rows": [
            {
                "split": SPLIT_TITLES.get(split, split),
                "aurc": format_value(selective[split].get("aurc"), 4),
                "baseline": format_value(selective[split].get("aurc_max_softmax"), 4),
                "aurc_balanced": format_value(selective[split].get("aurc_balanced"), 4),
                "baseline_balanced": format_value(
                    selective[split].get("aurc_balanced_max_softmax"), 4
                ),
            }
            for split in _splits(selective)
        ],
        "no_ood_text": NO_OOD_TEXT,
        "coverage_split": SPLIT_TITLES.get(coverage_split or "", coverage_split),
        "coverage_rows": [
            {
                "coverage": f"{100 * row['coverage']:.0f}%",
                "kept": row["kept"],
                "balanced_accuracy": format_value(row["balanced_accuracy"]),
            }
            for row in (
                selective.get(coverage_split, {}).get("coverage", []) if coverage_split else []
            )
        ],
        "ood": None
        if not isinstance(ood, dict)
        else {
            "text": describe_ood(ood),
            "rows": [
                {
                    "split": SPLIT_TITLES.get(split, split),
                    "n": r["n"],
                    "flagged": r["flagged"],
                    "share": format_value(r["flagged_share"]),
                }
                for split, r in ((s, ood["splits"][s]) for s in _splits(ood.get("splits", {})))
            ],
        },
    }


def trust_markdown(run: RunFolder) -> list[str]:
    """The model card's section on calibration, referral and out-of-distribution inputs."""
    context = trust_context(run)
    lines = ["## When not to trust a prediction", ""]
    if context is None:
        return lines + [
            "This run recorded no calibration, refer band or out-of-distribution score."
        ]
    lines += [escape_markdown(context["calibration_text"]), ""]
    if context["comparison_text"]:
        lines += [escape_markdown(context["comparison_text"]), ""]
    lines += markdown_table(
        ["Split", "ECE before", "ECE after", "Brier before", "Brier after"],
        [
            [r["split"], r["ece_before"], r["ece_after"], r["brier_before"], r["brier_after"]]
            for r in context["calibration_rows"]
        ],
    )
    if context["prior_shift_text"]:
        lines += ["", escape_markdown(context["prior_shift_text"])]
    lines += ["", escape_markdown(context["refer_text"]), ""]
    if context["refer_rows"]:
        lines += markdown_table(
            [
                "Split",
                "Cases",
                "Referred",
                "Coverage",
                "Balanced accuracy, all",
                "Balanced accuracy, kept",
            ],
            [
                [r["split"], r["n"], r["referred"], r["coverage"], r["all"], r["kept"]]
                for r in context["refer_rows"]
            ],
        )
    lines += _selective_markdown(context)
    if context["ood"] is None:
        return lines + ["", NO_OOD_TEXT]
    lines += ["", escape_markdown(context["ood"]["text"]), ""]
    lines += markdown_table(
        ["Split", "Cases", "Flagged out of distribution", "Share"],
        [[r["split"], r["n"], r["flagged"], r["share"]] for r in context["ood"]["rows"]],
    )
    return lines


#: What the selective-prediction tables measure (the report's paragraph, in plain text).
SELECTIVE_TEXT = (
    "Selective prediction: cases kept class by class (the same share of each decided class, "
    "the class decided at the threshold, most probable decision first), against the plain "
    "order of the largest probability (max-softmax). AURC is the area under the "
    "risk-coverage curve (lower is better); risk is the error rate of the kept cases (in "
    "brackets: 1 - their balanced accuracy)."
)


def _selective_markdown(context: dict[str, Any]) -> list[str]:
    """The model card's risk-coverage tables: AURC per split, and the kept cases' balanced
    accuracy at each coverage (nothing for a run that recorded no selective prediction)."""
    if not context["aurc_rows"]:
        return []
    lines = ["", SELECTIVE_TEXT, ""]
    lines += markdown_table(
        ["Split", "AURC, class-stratified", "AURC, max-softmax"],
        [
            [r["split"], f"{r['aurc']} ({r['aurc_balanced']})",
             f"{r['baseline']} ({r['baseline_balanced']})"]
            for r in context["aurc_rows"]
        ],
    )  # fmt: skip
    if context["coverage_rows"]:
        lines += [
            "",
            f"Balanced accuracy of the kept cases by coverage ({context['coverage_split']} split):",
            "",
        ]
        lines += markdown_table(
            ["Coverage", "Cases kept", "Balanced accuracy"],
            [[r["coverage"], r["kept"], r["balanced_accuracy"]] for r in context["coverage_rows"]],
        )
    return lines
