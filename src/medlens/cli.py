"""``medlens <verb>``: one Typer app. Heavy imports live inside each command so --help is instant."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from medlens.errors import MedlensError


class _Verbs(TyperGroup):
    """Every verb's ``MedlensError`` becomes one line on stderr and its exit code (2), the
    same whether the app runs from the console script or from a test's ``CliRunner``."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MedlensError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="medlens",
    cls=_Verbs,
    help="Deep-learning medical image analysis: train, evaluate, predict, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEFAULT_DEMO_DATA = Path("../shared/data/pneumoniamnist_subset/pneumoniamnist.npz")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    import yaml

    overrides: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            _fail(f"--set {pair!r}: expected KEY=VALUE, e.g. train.epochs=5")
        key, value = pair.split("=", 1)
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Run config (YAML).")],
    resume: Annotated[bool, typer.Option(help="Continue a killed run from its last.pt.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder.")] = False,
    skip_bad: Annotated[
        bool,
        typer.Option("--skip-bad", help="Skip unreadable files and list them in the run folder."),
    ] = False,
    set_: Annotated[
        list[str], typer.Option("--set", help="Override a config key: --set train.epochs=5")
    ] = [],  # noqa: B006
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train a model from CONFIG and write its run folder (runs/<name>/). A pipeline config
    (kind: pipeline) trains its stages in order on one outer fold (docs/pipeline.md)."""
    from medlens.pipeline.config import is_pipeline_file

    if is_pipeline_file(config):
        from medlens.commands.pipeline import train_pipeline_command

        if resume or skip_bad:
            _fail(f"{'--resume' if resume else '--skip-bad'}: does not apply to a pipeline config")
        run_dir = train_pipeline_command(
            config, _parse_overrides(set_), overwrite=overwrite, progress=not quiet
        )
    else:
        from medlens.commands.train import train_command

        run_dir = train_command(
            config,
            _parse_overrides(set_),
            skip_bad=skip_bad,
            resume=resume,
            overwrite=overwrite,
            progress=not quiet,
        )
    typer.echo(f"run folder: {run_dir}")
    typer.echo(f"report:     {run_dir / 'report.html'}")


@app.command()
def evaluate(
    run_dir: Annotated[
        Path | None, typer.Argument(help="A finished run folder (or give --pred and --ref).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Other labelled data to evaluate on (same format options as a config)."),
    ] = None,
    data_format: Annotated[
        str, typer.Option("--format", help="medmnist | folder | csv | dicom")
    ] = "medmnist",
    split: Annotated[
        str | None,
        typer.Option(help="train | val | test | all (default: test of MedMNIST data, else all)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for metrics.json, the CSV and plots.")
    ] = None,
    pred: Annotated[
        Path | None,
        typer.Option(
            help="Folder of predicted masks (PNG/TIFF/GIF, NIfTI, .npy, DICOM SEG), or a "
            "detections.csv of boxes."
        ),
    ] = None,
    ref: Annotated[
        Path | None,
        typer.Option(
            help="Folder of reference masks with the same file names, or box annotations "
            "(Pascal VOC folder, COCO JSON, CSV of boxes)."
        ),
    ] = None,
    spacing: Annotated[
        str | None,
        typer.Option(help="Voxel size in mm: one value or one per axis, e.g. 0.8,0.8,1.25."),
    ] = None,
    fov: Annotated[
        Path | None, typer.Option(help="Folder of field-of-view masks (same file names).")
    ] = None,
    tolerance_mm: Annotated[
        float, typer.Option(help="Normalised surface Dice tolerance (mm).", min=0)
    ] = 1.0,
    registration: Annotated[
        Path | None, typer.Option(help="A `medlens register` output folder to score.")
    ] = None,
    fixed_landmarks: Annotated[
        Path | None, typer.Option(help="Registration: fixed landmarks (world mm).")
    ] = None,
    moving_landmarks: Annotated[
        Path | None, typer.Option(help="Registration: moving landmarks (world mm).")
    ] = None,
    fixed_labels: Annotated[
        Path | None, typer.Option(help="Registration: the fixed image's labels.")
    ] = None,
) -> None:
    """Evaluate a run's model (at its validation-chosen threshold), or two folders of masks
    (--pred DIR --ref DIR): Dice, Jaccard, precision, sensitivity, specificity, HD, HD95,
    ASSD, NSD per case and class, written as metrics.csv + metrics.json + summary.txt; or a
    detections.csv against box annotations (--pred FILE --ref ANNOTATIONS): COCO AP, FROC,
    F1 and counts with CIs, written as metrics.json + counts.csv."""
    from medlens.commands.evaluate import evaluate_command
    from medlens.commands.pipeline import evaluate_pipeline_command, is_pipeline_run

    if run_dir is not None and is_pipeline_run(run_dir):
        typer.echo(evaluate_pipeline_command(run_dir))
        return
    typer.echo(
        evaluate_command(
            run_dir,
            data=data,
            data_format=data_format,
            split=split,
            out=out,
            pred=pred,
            ref=ref,
            spacing=spacing,
            fov=fov,
            tolerance_mm=tolerance_mm,
            registration=registration,
            fixed_landmarks=fixed_landmarks,
            moving_landmarks=moving_landmarks,
            fixed_labels=fixed_labels,
        )
    )


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Images: DICOM, NIfTI, PNG/JPEG/TIFF, .npz, or folders of them."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Classification: the CSV (default predictions.csv). Segmentation: the folder "
            "for the masks and segmentations.csv (default masks/)."
        ),
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Record unreadable files and go on.")
    ] = False,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Images per forward pass (default 64).")
    ] = None,
    mask_format: Annotated[
        str | None,
        typer.Option(
            help="Segmentation masks: auto (DICOM SEG for a DICOM series, PNG for 2D, NIfTI "
            "for 3D) | png | nifti | dicom-seg. Default auto."
        ),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="Stream over any number of files: local | ray (also when --out ends in "
            ".parquet); results written as they come, re-runs resume."
        ),
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (auto: the running cluster).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Decoding processes (local) / model actors (Ray); default: one per CPU core, "
            "at most 8.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    uncertainty: Annotated[
        str | None,
        typer.Option(
            help="tta | mc_dropout | ensemble (an ensemble run folder): per-case entropy and "
            "mutual information in the CSV (classification); per-voxel maps and a per-case "
            "summary (segmentation)."
        ),
    ] = None,
    adapt_prior: Annotated[
        bool,
        typer.Option(
            "--adapt-prior",
            help="Classification: estimate the class mix of these images (a batch from one "
            "site, at least 30) without labels, and add probabilities adapted to it "
            "(adapted_prob_* columns, <out>.prior_shift.json); decisions are unchanged.",
        ),
    ] = False,
) -> None:
    """Apply a run's model to images: one CSV row per image (classification), or one mask per
    image (segmentation). An option that does not apply to the run's task is refused."""
    from medlens.commands.predict import PredictOptions, predict_command

    options = PredictOptions(
        out=out,
        skip_bad=skip_bad,
        batch_size=batch_size,
        mask_format=mask_format,
        engine=engine,
        address=address,
        workers=workers,
        quiet=quiet,
        uncertainty=uncertainty,
        adapt_prior=adapt_prior,
    )
    typer.echo(predict_command(run_dir, inputs, options))


@app.command()
def register(
    fixed: Annotated[Path, typer.Argument(help="Fixed image: NIfTI, a DICOM series, PNG...")],
    moving: Annotated[Path, typer.Argument(help="Moving image, warped onto the fixed grid.")],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("registration"),
    moving_labels: Annotated[
        Path | None, typer.Option(help="Label map on the moving grid, to propagate.")
    ] = None,
    fixed_labels: Annotated[
        Path | None, typer.Option(help="The fixed image's labels: Dice/HD95 of the propagated.")
    ] = None,
    fixed_landmarks: Annotated[
        Path | None, typer.Option(help="Fixed landmarks (world mm, one per line): TRE.")
    ] = None,
    moving_landmarks: Annotated[
        Path | None, typer.Option(help="The corresponding moving landmarks (world mm).")
    ] = None,
    stages: Annotated[
        str | None, typer.Option(help="Comma-separated: rigid,affine,deformable (the default).")
    ] = None,
    loss: Annotated[str | None, typer.Option(help="Deformable similarity: ncc | mi | mse.")] = None,
    regulariser: Annotated[str | None, typer.Option(help="diffusion | bending.")] = None,
    regulariser_weight: Annotated[float | None, typer.Option(min=0)] = None,
    diffeomorphic: Annotated[
        bool, typer.Option(help="Stationary velocity field, scaling and squaring.")
    ] = False,
    init: Annotated[str | None, typer.Option(help="com (default) | geometry.")] = None,
    model: Annotated[
        Path | None, typer.Option(help="A task: registration run: its network's field.")
    ] = None,
    set_: Annotated[
        list[str],
        typer.Option("--set", help="Any registration key: --set deformable_iterations=[50,20,0]"),
    ] = [],  # noqa: B006
    seed: Annotated[int, typer.Option()] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Register MOVING to FIXED (rigid -> affine -> deformable): warped image, displacement
    field, transform chain, propagated labels, Jacobian and folding, metrics, report.html."""
    from medlens.commands.register import RegisterInputs, register_command, registration_config

    settings: dict[str, Any] = {
        "stages": _split_list(stages) or None,
        "loss": loss,
        "regulariser": regulariser,
        "regulariser_weight": regulariser_weight,
        "diffeomorphic": diffeomorphic or None,
        "init": init,
        **_parse_overrides(set_),
    }
    inputs = RegisterInputs(
        fixed, moving, moving_labels, fixed_labels, fixed_landmarks, moving_landmarks, model
    )
    config = registration_config(settings)
    typer.echo(register_command(inputs, out, config, seed=seed, overwrite=overwrite))


def _split_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@app.command()
def explain(
    run_dir: Annotated[Path, typer.Argument(help="A finished classification run folder.")],
    inputs: Annotated[
        list[Path] | None, typer.Argument(help="Images to explain (overlay PNGs are written).")
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            help="gradcam | gradcam++ | saliency | smoothgrad | integrated-gradients | occlusion",
        ),
    ] = "gradcam",
    target: Annotated[
        str | None, typer.Option(help="Class name or index to explain (default: the decision).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the overlays (default <run>/explanations/).")
    ] = None,
    param: Annotated[
        list[str], typer.Option("--param", help="Method option KEY=VALUE, e.g. n_samples=32.")
    ] = [],  # noqa: B006
    gallery: Annotated[
        bool, typer.Option(help="True/false positives and false negatives of the test split.")
    ] = False,
    n_per_kind: Annotated[int, typer.Option(min=1)] = 4,
    faithfulness: Annotated[
        int, typer.Option(help="Deletion/insertion AUC vs random maps on N test cases.", min=0)
    ] = 0,
    randomization: Annotated[
        bool, typer.Option(help="Model-randomisation sanity check (SSIM of the maps).")
    ] = False,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Heatmaps of what drives a run's decisions, and checks that they are faithful to it.

    With --gallery, --faithfulness or --randomization the findings are added to the run's
    report.html and model_card.md."""
    from medlens.commands.explain import explain_command

    outcome = explain_command(
        run_dir,
        list(inputs or []),
        method=method,
        target=target,
        out=out,
        params=_parse_overrides(param),
        gallery=gallery,
        n_per_kind=n_per_kind,
        faithfulness_cases=faithfulness,
        randomization=randomization,
        seed=seed,
    )
    for path in outcome.overlays:
        typer.echo(f"overlay: {path}")
    if outcome.section_html:
        typer.echo(outcome.summary)
        typer.echo(f"report:  {run_dir / 'report.html'}")


@app.command()
def audit(
    run_dir: Annotated[Path, typer.Argument(help="A finished classification run folder.")],
    groups: Annotated[
        str, typer.Option(help="Subgroup columns of predictions.csv, e.g. sex,age_bin,site.")
    ],
    positive_class: Annotated[
        str | None, typer.Option(help="The class audited as positive (multi-class runs).")
    ] = None,
    mitigate: Annotated[
        str | None,
        typer.Option(help="Per-group thresholds: true_positive_rate_parity,equalized_odds."),
    ] = None,
    age_bins: Annotated[
        str | None, typer.Option(help="Edges for age_bin in years, e.g. 0,40,65,inf.")
    ] = None,
    n_bootstrap: Annotated[int, typer.Option(min=100)] = 1000,
    min_group_size: Annotated[int, typer.Option(min=1)] = 30,
    seed: Annotated[int, typer.Option()] = 0,
    fail_on_flag: Annotated[
        bool, typer.Option(help="Exit with status 1 when a gap is flagged (for CI).")
    ] = False,
) -> None:
    """Subgroup fairness audit of a run's test predictions: per-group metrics, the gaps
    between groups with bootstrap intervals, flags, and optional mitigations."""
    from medlens.commands.audit import audit_command

    result = audit_command(
        run_dir,
        _split_list(groups),
        positive_class=positive_class,
        mitigate=_split_list(mitigate),
        age_bins=age_bins,
        n_bootstrap=n_bootstrap,
        min_group_size=min_group_size,
        seed=seed,
    )
    typer.echo(result.summary)
    for gap in result.flagged():
        typer.echo(
            f"  flagged: {gap.attribute} {gap.title}: {gap.difference:.3f} "
            f"[{gap.ci_low:.3f}, {gap.ci_high:.3f}] ({gap.higher_group} > {gap.lower_group})"
        )
    typer.echo(f"audit written to {run_dir / 'audit.json'}; report: {run_dir / 'report.html'}")
    if fail_on_flag and result.flagged():
        raise typer.Exit(1)


@app.command()
def features(
    source: Annotated[
        str, typer.Argument(help="A run folder, a model name (resnet18...), or 'handcrafted'.")
    ],
    out: Annotated[Path, typer.Option(help="The .npz to write.")] = Path("features.npz"),
    config: Annotated[
        Path | None, typer.Option(help="A run config whose data (and preprocess) to use.")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Only these splits, e.g. train,val.")] = None,
    pretrained: Annotated[
        str | None, typer.Option(help="imagenet: ImageNet weights for a model name.")
    ] = None,
    bins: Annotated[int, typer.Option(min=2, help="Grey levels for texture features.")] = 32,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
) -> None:
    """Deep (pooled penultimate) or handcrafted (radiomics-style) features of every case."""
    from medlens.commands.features import extract_features_command

    feature_set = extract_features_command(
        source,
        config,
        out,
        splits=_split_list(split) or None,
        pretrained=pretrained,
        bins=bins,
        batch_size=batch_size,
    )
    n, d = feature_set.features.shape
    typer.echo(f"{n} cases x {d} features written to {out}")


@app.command()
def anonymize(
    input_path: Annotated[
        Path, typer.Argument(metavar="IN", help="A DICOM file or a folder of them.")
    ],
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Output folder (outside IN).")],
    profile: Annotated[
        str, typer.Option(help="Confidentiality profile (PS3.15 Annex E).")
    ] = "basic",
    retain_dates_shifted: Annotated[
        bool, typer.Option(help="Keep dates, shifted per patient.")
    ] = False,
    retain_patient_characteristics: Annotated[
        bool, typer.Option(help="Keep age, sex, size, weight.")
    ] = False,
    clean_descriptors: Annotated[
        bool, typer.Option(help="Keep descriptions, cleaned of identifiers.")
    ] = False,
    blank: Annotated[
        list[str],
        typer.Option(
            help="Blank pixels ROW0:ROW1,COL0:COL1 (optionally @MODALITY) in every frame."
        ),
    ] = [],  # noqa: B006
    key_file: Annotated[
        Path | None, typer.Option(help="Secret key file (else $MEDLENS_DEID_KEY).")
    ] = None,
    quarantine_documents: Annotated[
        bool,
        typer.Option(
            help="Write encapsulated PDF/CDA/STL/OBJ/MTL documents, content unchanged, to "
            "OUT/quarantine for review instead of refusing them."
        ),
    ] = False,
) -> None:
    """De-identify DICOM files: Basic Application Level Confidentiality Profile, consistent
    keyed pseudonyms and UIDs, a CSV log without patient data. Flagged files (possible
    burned-in text, kept documents) go to OUT/quarantine, never beside the clean ones."""
    from medlens.privacy import AnonymizationOptions, PixelRegion, anonymize_tree

    regions = [_parse_region(text) for text in blank]
    options = AnonymizationOptions(
        profile=profile,
        retain_dates_shifted=retain_dates_shifted,
        retain_patient_characteristics=retain_patient_characteristics,
        clean_descriptors=clean_descriptors,
        blank_regions=tuple(PixelRegion(*r[:4], modality=r[4]) for r in regions),
        quarantine_documents=quarantine_documents,
        key_file=key_file,
    )
    report = anonymize_tree(input_path, out_dir, options)
    typer.echo(report.summary())
    if report.count("flagged"):
        typer.echo(f"flagged files, to review before release: {report.quarantine_dir}")
    typer.echo(f"log: {report.log_path}")


def _parse_region(text: str) -> tuple[int, int, int, int, str | None]:
    """``"0:40,0:512@US"`` -> (0, 40, 0, 512, "US")."""
    from medlens.errors import ConfigError

    box, _, modality = text.partition("@")
    try:
        rows, cols = box.split(",")
        r0, r1 = (int(v) for v in rows.split(":"))
        c0, c1 = (int(v) for v in cols.split(":"))
    except ValueError:
        raise ConfigError("--blank", f"{text!r}: expected ROW0:ROW1,COL0:COL1[@MODALITY]") from None
    return r0, r1, c0, c1, modality or None


@app.command()
def download(
    flag: Annotated[
        str, typer.Argument(help="MedMNIST dataset, e.g. pneumoniamnist, adrenalmnist3d.")
    ],
    root: Annotated[Path, typer.Option(help="Folder to save into.")] = Path("data"),
    size: Annotated[int, typer.Option(help="28, 64, 128 or 224.")] = 28,
) -> None:
    """Download a MedMNIST file from its official URL and check its MD5 (needs internet)."""
    from medlens.data.medmnist import download_medmnist

    path = download_medmnist(flag, size=size, root=root)
    typer.echo(f"saved {path}")


@app.command()
def demo(
    data: Annotated[
        Path, typer.Option(help="PneumoniaMNIST .npz (MedMNIST v2).")
    ] = DEFAULT_DEMO_DATA,
    output_dir: Annotated[Path, typer.Option(help="Where the run folder goes.")] = Path("runs"),
    minutes: Annotated[float, typer.Option(help="Training time budget (minutes).")] = 4.0,
) -> None:
    """Train and evaluate a ResNet-18 on PneumoniaMNIST and write its report."""
    from medlens.commands.demo import run_demo

    run_dir = run_demo(data, output_dir=output_dir, minutes=minutes)
    typer.echo(f"report: {(run_dir / 'report.html').resolve()}")


@app.command()
def serve(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders to serve.")],
    host: Annotated[
        str, typer.Option(help="Bind address (loopback unless tokens are set).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    tokens: Annotated[
        Path | None,
        typer.Option(help="Bearer tokens file (token -> models); else $MEDLENS_TOKENS."),
    ] = None,
    engine: Annotated[
        str, typer.Option(help="torch | onnx | onnx-int8 (needs export --quantize int8)")
    ] = "torch",
    max_upload_mb: Annotated[float, typer.Option(min=0.01)] = 100.0,
    timeout_s: Annotated[float, typer.Option(min=0.1)] = 60.0,
    max_voxels: Annotated[
        int | None,
        typer.Option(min=1, help="Refuse images declaring more voxels; else $MEDLENS_MAX_VOXELS."),
    ] = None,
    max_concurrent: Annotated[
        int, typer.Option(min=1, help="Requests that read and infer at once.")
    ] = 2,
    allowed_hosts: Annotated[
        list[str],
        typer.Option(help="Host header names answered besides loopback (repeat or comma-list)."),
    ] = [],  # noqa: B006
    processes: Annotated[
        int,
        typer.Option(min=1, help="Service processes behind one socket (each loads the models)."),
    ] = 1,
) -> None:
    """Serve run folders over HTTP: /v1/predict, /v1/segment, /v1/models, a web page at /."""
    from medlens.serve.app import serve as run_service

    run_service(
        run_dirs,
        host=host,
        port=port,
        tokens_file=tokens,
        engine=engine,
        max_upload_mb=max_upload_mb,
        timeout_s=timeout_s,
        max_voxels=max_voxels,
        max_concurrent=max_concurrent,
        allowed_hosts=[h.strip() for item in allowed_hosts for h in item.split(",") if h.strip()],
        processes=processes,
    )


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    fmt: Annotated[str, typer.Option("--format", help="onnx")] = "onnx",
    out: Annotated[Path | None, typer.Option(help="Default <run>/model.onnx.")] = None,
    check: Annotated[
        list[Path], typer.Option(help="Images to check ONNX against PyTorch on.")
    ] = [],  # noqa: B006
    opset: Annotated[int | None, typer.Option()] = None,
    quantize: Annotated[
        str | None,
        typer.Option(
            help="int8: also write model.int8.onnx (static, calibrated on training images)."
        ),
    ] = None,
    calibration: Annotated[
        list[Path], typer.Option(help="Images to calibrate int8 on (default: 128 training images).")
    ] = [],  # noqa: B006
) -> None:
    """Export a run's model to ONNX and check it against PyTorch with onnxruntime."""
    from medlens.commands.export import export_run

    report = export_run(
        run_dir, fmt=fmt, out=out, opset=opset, check_images=check, quantize=quantize,
        calibration=calibration,
    )  # fmt: skip
    typer.echo(
        f"{report.path} ({report.exporter} exporter): max |ONNX - PyTorch| = "
        f"{report.max_abs_diff:.2e} on {report.n_checked} {report.checked_on}"
    )
    if report.int8_path is not None:
        typer.echo(
            f"{report.int8_path} (int8): max |int8 - float| = {report.int8_max_abs_diff:.2e}; "
            f"decisions unchanged on {report.int8_decisions_agree:.1%} of them"
        )


@app.command()
def ensemble(
    run_dirs: Annotated[list[Path], typer.Argument(help="Classification runs on the same data.")],
    method: Annotated[str, typer.Option(help="soft | weighted | stacking")] = "soft",
    out: Annotated[Path, typer.Option(help="The ensemble's run folder.")] = Path("runs/ensemble"),
    overwrite: Annotated[bool, typer.Option()] = False,
    calibration: Annotated[
        str,
        typer.Option(
            help="none (the members' calibrated probabilities combined as they are) | "
            "temperature | bcts | dirichlet | isotonic: recalibrate the ensemble on validation."
        ),
    ] = "none",
) -> None:
    """Combine runs (weights or stacker fitted on validation only) into a new run folder."""
    from medlens.commands.ensemble import ensemble_runs

    result = ensemble_runs(
        run_dirs,
        method=method,
        out_dir=out.parent,
        name=out.name,
        overwrite=overwrite,
        calibration=calibration,
    )
    typer.echo(f"ensemble run folder: {result}")
    typer.echo(f"report:              {result / 'report.html'}")


@app.command()
def cv(
    config: Annotated[Path, typer.Argument(help="Run config (YAML): deep, classical or hybrid.")],
    folds: Annotated[
        int | None, typer.Option(min=2, help="Default 5 (a pipeline: its data.folds).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Default <output_dir>/<name>-cv.")] = None,
    overwrite: Annotated[bool, typer.Option()] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Patient-aware stratified k-fold cross-validation of a config: mean ± sd of every metric.
    A pipeline config (kind: pipeline) runs each outer fold with its stages cross-fitted."""
    from medlens.commands.cv import cross_validate
    from medlens.pipeline.config import is_pipeline_file

    if is_pipeline_file(config):
        from medlens.commands.pipeline import cv_pipeline_command

        result = cv_pipeline_command(config, folds, out, overwrite, progress=not quiet)
        typer.echo(f"cross-validation written to {result}")
        return
    result = cross_validate(config, folds or 5, out, overwrite=overwrite, progress=not quiet)
    typer.echo(f"cross-validation written to {result}")


gan_app = typer.Typer(help="Class-conditional GAN: train, sample, mix into a training set.")
app.add_typer(gan_app, name="gan")


@gan_app.command("train")
def gan_train_command(
    config: Annotated[Path, typer.Argument(help="GAN config (YAML).")],
    set_: Annotated[list[str], typer.Option("--set", help="Override a key: --set epochs=5")] = [],  # noqa: B006
    overwrite: Annotated[bool, typer.Option()] = False,
    quiet: Annotated[bool, typer.Option()] = False,
) -> None:
    """Train a class-conditional DCGAN; writes curves, sample grids, FID and C2ST."""
    from medlens.commands.gan import gan_train

    run_dir = gan_train(config, _parse_overrides(set_), overwrite=overwrite, progress=not quiet)
    typer.echo(f"GAN run folder: {run_dir}")


@gan_app.command("sample")
def gan_sample_command(
    run_dir: Annotated[Path, typer.Argument(help="A GAN run folder.")],
    n: Annotated[int, typer.Option(min=1)] = 100,
    class_: Annotated[
        str | None, typer.Option("--class", help="Class name or index (default: balanced).")
    ] = None,
    out: Annotated[Path, typer.Option(help=".npz (MedMNIST layout) or a folder of PNGs.")] = Path(
        "synthetic.npz"
    ),
    seed: Annotated[int, typer.Option()] = 0,
    real: Annotated[
        Path | None, typer.Option(help="Real .npz whose val/test splits to copy in.")
    ] = None,
    overwrite: Annotated[bool, typer.Option()] = False,
) -> None:
    """Draw synthetic images of a class from a trained GAN."""
    from medlens.commands.gan import gan_sample

    path = gan_sample(run_dir, n, class_, out, seed=seed, real_npz=real, overwrite=overwrite)
    typer.echo(f"{n} synthetic images written to {path}")


@gan_app.command("mix")
def gan_mix_command(
    real: Annotated[Path, typer.Argument(help="The real MedMNIST .npz.")],
    synthetic: Annotated[Path, typer.Argument(help="Synthetic .npz from gan sample.")],
    out: Annotated[Path, typer.Argument(help="The mixed .npz to write.")],
    fraction: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.1,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """A stratified fraction of the real training split plus the synthetic images."""
    from medlens.commands.gan import gan_mix

    typer.echo(f"mixed training set written to {gan_mix(real, synthetic, out, fraction, seed)}")


pacs_app = typer.Typer(help="Round trips with a PACS (Orthanc REST / DICOMweb).")
app.add_typer(pacs_app, name="pacs")


@pacs_app.command("process")
def pacs_process(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    orthanc: Annotated[str, typer.Option(help="Orthanc URL, e.g. http://127.0.0.1:8042")],
    study: Annotated[str, typer.Option(help="StudyInstanceUID to process.")],
    user: Annotated[str | None, typer.Option(help="Else $MEDLENS_ORTHANC_USER.")] = None,
    password: Annotated[str | None, typer.Option(help="Else $MEDLENS_ORTHANC_PASSWORD.")] = None,
    dicomweb: Annotated[str, typer.Option(help="auto | on | off")] = "auto",
    ca_bundle: Annotated[
        Path | None, typer.Option(help="PEM file of the CAs to trust for an HTTPS Orthanc.")
    ] = None,
) -> None:
    """Pull a study, run the model, store DICOM SEG / SR + Secondary Capture back into it."""
    from medlens.pacs.commands import pacs_process_command

    result = pacs_process_command(
        orthanc, study, run_dir, user, password, dicomweb, ca_bundle=ca_bundle
    )
    typer.echo(result.summary())
    for skipped in result.skipped:
        typer.echo(f"  skipped: {skipped}")


@pacs_app.command("watch")
def pacs_watch(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    orthanc: Annotated[str, typer.Option(help="Orthanc URL.")],
    state: Annotated[Path, typer.Option(help="Where the last processed change is kept.")] = Path(
        "pacs_watch_state.json"
    ),
    poll_s: Annotated[float, typer.Option(min=0.1)] = 2.0,
    once: Annotated[bool, typer.Option(help="Process what is there, then stop.")] = False,
    user: Annotated[str | None, typer.Option()] = None,
    password: Annotated[str | None, typer.Option()] = None,
    dicomweb: Annotated[str, typer.Option(help="auto | on | off")] = "auto",
    ca_bundle: Annotated[
        Path | None, typer.Option(help="PEM file of the CAs to trust for an HTTPS Orthanc.")
    ] = None,
) -> None:
    """Follow Orthanc's change feed and process every new stable study (resumable)."""
    from medlens.pacs.commands import pacs_watch_command

    pacs_watch_command(
        orthanc,
        run_dir,
        state,
        poll_s=poll_s,
        once=once,
        user=user,
        password=password,
        dicomweb=dicomweb,
        echo=typer.echo,
        ca_bundle=ca_bundle,
    )


def main() -> None:
    """Console entry point: medlens errors become one line on stderr and exit code 2."""
    try:
        app()
    except MedlensError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(exc.exit_code)
    except FloatingPointError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(3)
    except KeyboardInterrupt:
        typer.secho("interrupted; resume with --resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
