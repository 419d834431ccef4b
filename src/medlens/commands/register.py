"""``medlens register FIXED MOVING --out DIR``: register two images (rigid -> affine ->
deformable) and write the warped image, the displacement field, the transform chain, the
propagated labels, the Jacobian and folding, metrics.json and report.html.

``evaluate_registration`` scores an output folder against landmarks and labels later (what
``medlens evaluate --registration DIR`` calls).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlens.config import RegistrationConfig
from medlens.errors import ConfigError, InputError
from medlens.io_utils import write_json_atomic


@dataclass(frozen=True)
class RegisterInputs:
    """The files of one ``medlens register`` call (None: not given).

    Attributes:
        fixed, moving: the two images (NIfTI, a DICOM series folder, PNG...).
        moving_labels: a label map on the moving grid, propagated to the fixed image.
        fixed_labels: the fixed image's label map, to score the propagated labels.
        fixed_landmarks, moving_landmarks: corresponding points (world mm), for the TRE.
        model: a ``task: registration`` run folder whose network gives the deformable stage.
    """

    fixed: Path
    moving: Path
    moving_labels: Path | None = None
    fixed_labels: Path | None = None
    fixed_landmarks: Path | None = None
    moving_landmarks: Path | None = None
    model: Path | None = None


def registration_config(settings: dict[str, Any]) -> RegistrationConfig:
    """A ``registration`` config section from option values (None: the default).

    Raises:
        ConfigError: keyed ``registration.<key>``, naming the first bad value.
    """
    from pydantic import ValidationError

    given = {k: v for k, v in settings.items() if v is not None}
    try:
        return RegistrationConfig.model_validate(given)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(part) for part in err["loc"]) or "<section>"
        raise ConfigError(f"registration.{key}", err["msg"]) from None


def _check_references(inputs: RegisterInputs) -> None:
    if (inputs.fixed_landmarks is None) != (inputs.moving_landmarks is None):
        raise ConfigError(
            "--landmarks", "the TRE needs both --fixed-landmarks and --moving-landmarks"
        )
    if inputs.fixed_labels is not None and inputs.moving_labels is None:
        raise ConfigError("--fixed-labels", "scores propagated labels; add --moving-labels")


def register_command(
    inputs: RegisterInputs,
    out: Path,
    config: RegistrationConfig | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> str:
    """Register ``inputs.moving`` to ``inputs.fixed`` and write the output folder ``out``
    (built in ``out.partial`` and renamed when whole).

    Returns:
        The summary line to print.

    Raises:
        InputError: an unreadable or unusable image, label map or landmark file.
        ConfigError: an existing ``out`` without ``overwrite``, or inconsistent options.
    """
    from medlens.data.readers import read_image
    from medlens.registration.checks import check_labels
    from medlens.registration.pipeline import register_images
    from medlens.run_folder.staging import check_free, open_stage, publish_run

    _check_references(inputs)
    check_free(out, overwrite, key="--out")
    fixed, moving = read_image(inputs.fixed), read_image(inputs.moving)
    labels = read_image(inputs.moving_labels) if inputs.moving_labels else None
    if labels is not None:
        check_labels(labels, moving)
    fixed_labels = read_image(inputs.fixed_labels) if inputs.fixed_labels else None
    if fixed_labels is not None and fixed_labels.spatial_shape != fixed.spatial_shape:
        raise InputError(
            fixed_labels.source,
            f"labels of shape {fixed_labels.spatial_shape} are not on the grid of the fixed "
            f"image {fixed.source} ({fixed.spatial_shape})",
        )
    config = config or RegistrationConfig()
    provider = None
    if inputs.model is not None:
        from medlens.registration.learned import network_field_provider

        provider, config = network_field_provider(inputs.model, config)
    result = register_images(fixed, moving, config, seed=seed, field_provider=provider)
    stage = open_stage(out)
    metrics = _write_outputs(stage, result, labels, fixed_labels, inputs)
    publish_run(stage, out)
    return _summary(metrics, out)


def _write_outputs(
    stage: Path,
    result: Any,
    labels: Any,
    fixed_labels: Any,
    inputs: RegisterInputs,
) -> dict[str, Any]:
    from medlens.registration import files
    from medlens.registration.evaluation import (
        correlation,
        deformation_metrics,
        label_metrics,
        landmark_metrics,
    )
    from medlens.registration.landmarks import read_landmarks
    from medlens.registration.pipeline import normalised_intensities
    from medlens.registration.warp import displacement_mm, warp_array
    from medlens.report.registration import write_registration_report

    chain, fixed, moving = result.chain, result.fixed, result.moving
    warped = warp_array(chain, moving.array)
    before = warp_array(chain, moving.array, stage="before")
    files.write_nifti(stage / files.WARPED, _spatial_first(warped), chain.fixed_to_world)
    if fixed.spatial_dims == 2:
        _write_png(stage / files.WARPED_PNG, warped, moving.array)
    fixed_norm = normalised_intensities(fixed)[0, 0].numpy()
    moving_view = moving.with_array(warped)
    after_norm = normalised_intensities(moving_view)[0, 0].numpy()
    before_norm = normalised_intensities(moving.with_array(before))[0, 0].numpy()
    metrics: dict[str, Any] = {
        "fixed": str(inputs.fixed),
        "moving": str(inputs.moving),
        "seconds": result.seconds,
        "ncc_before": correlation(fixed_norm, before_norm),
        "ncc_after": correlation(fixed_norm, after_norm),
        **deformation_metrics(chain),
    }
    field = displacement_mm(chain)
    if field is not None:
        from medlens.registration.jacobian import jacobian_determinant

        assert chain.displacement is not None
        files.write_displacement(stage / files.DISPLACEMENT, field, chain.fixed_to_world)
        det = jacobian_determinant(chain.displacement).astype(np.float32)
        files.write_nifti(stage / files.JACOBIAN, det, chain.fixed_to_world)
    if labels is not None:
        warped_labels = warp_array(chain, labels.array, nearest=True)
        files.write_nifti(
            stage / files.WARPED_LABELS,
            _spatial_first(warped_labels).astype(np.int16),
            chain.fixed_to_world,
        )
        if fixed.spatial_dims == 2:
            _write_png(stage / files.WARPED_LABELS_PNG, warped_labels, None)
        if fixed_labels is not None:
            before_labels = warp_array(chain, labels.array, nearest=True, stage="before")
            metrics["propagated_labels"] = label_metrics(
                warped_labels[0], before_labels[0], fixed_labels.array[0], fixed.spacing
            )
    if inputs.fixed_landmarks is not None and inputs.moving_landmarks is not None:
        metrics.update(
            landmark_metrics(
                chain,
                read_landmarks(inputs.fixed_landmarks, fixed.spatial_dims),
                read_landmarks(inputs.moving_landmarks, fixed.spatial_dims),
            )
        )
    document = files.chain_document(chain, str(inputs.fixed), str(inputs.moving), result.seconds)
    files.write_chain(stage / files.TRANSFORM, document)
    write_json_atomic(stage / files.METRICS, metrics)
    write_registration_report(stage, fixed_norm, before_norm, after_norm, metrics, document)
    return metrics


def _spatial_first(array: np.ndarray) -> np.ndarray:
    """``(C, *spatial)`` -> ``(*spatial)`` for one channel, ``(*spatial, C)`` for more."""
    return array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)


def _write_png(path: Path, array: np.ndarray, like: np.ndarray | None) -> None:
    """A 2D result as an 8-bit PNG: intensities scaled by the moving image's range (labels
    as they are)."""
    import io

    from PIL import Image as PILImage

    from medlens.io_utils import write_atomic

    values = _spatial_first(array).astype(np.float64)
    if like is not None:
        low, high = float(like.min()), float(like.max())
        values = (values - low) / max(high - low, 1e-12) * 255.0
    pixels = np.clip(np.round(values), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())


def _summary(metrics: dict[str, Any], out: Path) -> str:
    parts = [f"registered in {metrics['seconds']:.1f} s"]
    parts.append(f"NCC {metrics['ncc_before']:.3f} -> {metrics['ncc_after']:.3f}")
    if "folded_pct" in metrics:
        parts.append(f"folded voxels {metrics['folded_pct']:.3f}%")
    if "tre_mm" in metrics:
        parts.append(
            f"TRE median {metrics['tre_before_mm']['median']:.2f} -> "
            f"{metrics['tre_mm']['median']:.2f} mm"
        )
    if "propagated_labels" in metrics:
        parts.append(f"mean Dice {metrics['propagated_labels']['mean_dice']:.3f}")
    return "; ".join(parts) + f"; written to {out}"


def evaluate_registration(
    out_dir: Path,
    fixed_landmarks: Path | None = None,
    moving_landmarks: Path | None = None,
    fixed_labels: Path | None = None,
) -> dict[str, Any]:
    """Score a ``medlens register`` output folder: TRE (mm) from landmark files, Dice and HD95
    of its ``warped_labels.nii.gz`` against ``fixed_labels``, folding and Jacobian statistics;
    the result is merged into its ``metrics.json``.

    Returns:
        The metrics that were computed.

    Raises:
        InputError: a folder that is not a registration output, a missing warped label map,
            or an unreadable reference.
        ConfigError: only one of the two landmark files.
    """
    import json

    import nibabel as nib

    from medlens.data.readers import read_image
    from medlens.registration import files
    from medlens.registration.evaluation import (
        deformation_metrics,
        label_metrics,
        landmark_metrics,
    )
    from medlens.registration.landmarks import read_landmarks

    if (fixed_landmarks is None) != (moving_landmarks is None):
        raise ConfigError("--landmarks", "the TRE needs the fixed and the moving landmark files")
    chain = files.read_chain(out_dir)
    metrics: dict[str, Any] = deformation_metrics(chain)
    if fixed_landmarks is not None and moving_landmarks is not None:
        metrics.update(
            landmark_metrics(
                chain,
                read_landmarks(fixed_landmarks, chain.dims),
                read_landmarks(moving_landmarks, chain.dims),
            )
        )
    if fixed_labels is not None:
        path = Path(out_dir) / files.WARPED_LABELS
        if not path.is_file():
            raise InputError(path, "not found: register with --moving-labels to propagate labels")
        stored = nib.load(path)
        warped = np.asarray(stored.dataobj).reshape(chain.fixed_shape)  # type: ignore[attr-defined]
        reference = read_image(fixed_labels)
        if reference.spatial_shape != chain.fixed_shape:
            raise InputError(
                fixed_labels,
                f"labels of shape {reference.spatial_shape} are not on the fixed grid "
                f"{chain.fixed_shape}",
            )
        spacing = tuple(np.linalg.norm(chain.fixed_to_world[:-1, :-1], axis=0).tolist())
        metrics["propagated_labels"] = label_metrics(
            warped, np.zeros_like(warped), reference.array[0], spacing
        )
        for entry in metrics["propagated_labels"]["labels"].values():
            entry.pop("dice_before")  # the folder keeps no "before" label map
    path = Path(out_dir) / files.METRICS
    existing = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    write_json_atomic(path, {**existing, **metrics})
    return metrics


def format_evaluation(metrics: dict[str, Any], out_dir: Path) -> str:
    """The lines ``medlens evaluate --registration DIR`` prints for ``evaluate_registration``'s
    result."""
    lines = []
    if "tre_mm" in metrics:
        tre, before = metrics["tre_mm"], metrics["tre_before_mm"]
        lines.append(
            f"TRE ({tre['n']} landmarks): median {before['median']:.2f} -> {tre['median']:.2f} "
            f"mm, mean {tre['mean']:.2f} mm, max {tre['max']:.2f} mm"
        )
    for label, entry in metrics.get("propagated_labels", {}).get("labels", {}).items():
        lines.append(
            f"label {label}: Dice {entry['dice']:.3f}, HD95 {entry['hausdorff_distance_95']:.2f} mm"
        )
    if "jacobian" in metrics:
        jac = metrics["jacobian"]
        lines.append(
            f"Jacobian determinant: min {jac['min']:.3f}, mean {jac['mean']:.3f}, max "
            f"{jac['max']:.3f}; folded voxels {jac['folded_pct']:.4f}%"
        )
    lines.append(f"metrics merged into {Path(out_dir) / 'metrics.json'}")
    return "\n".join(lines)
