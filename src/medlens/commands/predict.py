"""``medlens predict RUN INPUT...``: a finished run applied to images, by its task's
predictor, with every option checked against the task.

An option that does not apply to the run's task (``--mask-format`` for a classifier,
``--engine`` for a segmenter) is refused with one error naming it, never ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from medlens.errors import ConfigError
from medlens.run_folder.reader import read_run_task
from medlens.tasks import CLASSIFICATION, DETECTION, REGISTRATION, SEGMENTATION, TASKS, Task

ENGINES = ("local", "ray")
DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class PredictOptions:
    """The options of ``medlens predict``; ``None`` (or False) means not given.

    Attributes:
        out: the output (classification: the CSV, or .parquet when streaming; segmentation:
            the folder of masks). Default: the task's ``predict_output``.
        skip_bad: record unreadable files and go on.
        batch_size: images per forward pass (classification; default 64).
        mask_format: ``auto``, ``png``, ``nifti`` or ``dicom-seg`` (segmentation).
        engine: ``local`` or ``ray``: stream over any number of files (classification).
        address: a Ray cluster address (implies ``engine="ray"``).
        workers: decoding processes / Ray actors when streaming.
        quiet: no progress bar.
        uncertainty: ``tta``, ``mc_dropout`` or ``ensemble`` (an ensemble run folder):
            per-case entropy and mutual information (classification), per-voxel maps and a
            per-case summary (segmentation).
        adapt_prior: estimate the batch's class mix and add probabilities adapted to it
            (classification, ``medlens.trust.label_shift``).
    """

    out: Path | None = None
    skip_bad: bool = False
    batch_size: int | None = None
    mask_format: str | None = None
    engine: str | None = None
    address: str | None = None
    workers: int | None = None
    quiet: bool = False
    uncertainty: str | None = None
    adapt_prior: bool = False

    def streams(self) -> bool:
        """Whether the streaming engines run: an engine or a Ray address given, or a
        ``.parquet`` output."""
        parquet = self.out is not None and self.out.suffix == ".parquet"
        return self.engine is not None or self.address is not None or parquet

    def given(self) -> list[str]:
        """The names of the options the user set (``out`` applies to every task)."""
        return [
            name
            for name in (
                "skip_bad",
                "batch_size",
                "mask_format",
                "engine",
                "address",
                "workers",
                "uncertainty",
                "adapt_prior",
            )
            if getattr(self, name) not in (None, False)
        ] + (["quiet"] if self.quiet else [])


def check_options(task: Task, options: PredictOptions, run_dir: Path) -> None:
    """Refuse the first option that means nothing for ``task``'s runs.

    Raises:
        ConfigError: keyed ``--<option>``, naming the run's task and the tasks it applies to.
    """
    for name in options.given():
        if not task.applies(name):
            owners = [t for t in TASKS if TASKS.get(t).applies(name)]
            flag = "--" + name.replace("_", "-")
            raise ConfigError(
                flag,
                f"does not apply to {run_dir}, a {task.name} run (it applies to "
                f"{' and '.join(owners)} runs)",
            )
    if options.workers is not None and not options.streams():
        raise ConfigError("--workers", "sets the streaming workers; add --engine local or ray")
    if options.engine is not None and options.engine not in ENGINES:
        raise ConfigError("--engine", f"expected {' or '.join(ENGINES)}, not {options.engine!r}")
    if options.uncertainty is not None:
        from medlens.inference.uncertainty import check_method

        check_method(options.uncertainty)
        if options.streams():
            raise ConfigError(
                "--uncertainty", "is written to the CSV of a plain predict, not when streaming"
            )
    if options.adapt_prior and options.streams():
        raise ConfigError(
            "--adapt-prior",
            "estimates the class mix of a plain predict's batch, not when streaming",
        )


def _classify(run_dir: Path, inputs: Sequence[Path], options: PredictOptions) -> str:
    out = options.out
    batch_size = options.batch_size or DEFAULT_BATCH_SIZE
    if options.streams():
        from medlens.streaming import stream_predict

        engine = options.engine or ("ray" if options.address else "local")
        summary = stream_predict(
            run_dir,
            list(inputs),
            out or Path("predictions.parquet"),
            engine="ray" if engine == "ray" else "local",
            workers=options.workers,
            batch_size=batch_size,
            ray_address=options.address,
            progress=not options.quiet,
        )
        return (
            f"{summary.predicted} predictions ({summary.referred} referred to a human, "
            f"{summary.out_of_distribution} of them out of distribution), {summary.errors} "
            f"unreadable (rows with an error) -> {summary.out}"
            + (f"; {summary.already_done} already there" if summary.already_done else "")
        )
    from medlens.inference.classify import predict_files

    out_csv = out or CLASSIFICATION.predict_output
    written = predict_files(
        run_dir,
        list(inputs),
        out_csv,
        skip_bad=options.skip_bad,
        batch_size=batch_size,
        progress=not options.quiet,
        uncertainty=options.uncertainty,
        adapt_prior=options.adapt_prior,
    )
    return (
        f"{written.predicted} predictions written to {out_csv}"
        f" ({written.referred} referred to a human, {written.out_of_distribution} of them "
        "out of distribution)"
        + (f"; {written.skipped} files skipped (listed there)" if written.skipped else "")
        + (f"; {written.prior_shift}" if written.prior_shift else "")
    )


def _segment(run_dir: Path, inputs: Sequence[Path], options: PredictOptions) -> str:
    from medlens.inference.segment import segment_files

    out_dir = options.out or SEGMENTATION.predict_output
    n_ok, n_bad = segment_files(
        run_dir,
        list(inputs),
        out_dir,
        mask_format=options.mask_format or "auto",
        skip_bad=options.skip_bad,
        progress=not options.quiet,
        uncertainty=options.uncertainty,
    )
    return f"{n_ok} masks written to {out_dir}" + (
        f"; {n_bad} files skipped (listed in segmentations.csv)" if n_bad else ""
    )


def _register(run_dir: Path, inputs: Sequence[Path], options: PredictOptions) -> str:
    """A registration run's network as the deformable stage of ``medlens register``: the
    inputs are one or more FIXED MOVING pairs; one output folder per pair."""
    from medlens.commands.register import RegisterInputs, register_command

    if len(inputs) % 2 or not inputs:
        raise ConfigError(
            "inputs", f"a registration run takes FIXED MOVING pairs, got {len(inputs)} paths"
        )
    out = options.out or REGISTRATION.predict_output
    pairs = list(zip(inputs[::2], inputs[1::2], strict=True))
    lines = []
    for k, (fixed, moving) in enumerate(pairs):
        target = out if len(pairs) == 1 else out / f"pair_{k:03d}"
        lines.append(register_command(RegisterInputs(fixed, moving, model=run_dir), target))
    return "\n".join(lines)


def _detect(run_dir: Path, inputs: Sequence[Path], options: PredictOptions) -> str:
    from medlens.inference.detect import detect_files

    out_dir = options.out or DETECTION.predict_output
    n_ok, n_bad = detect_files(
        run_dir, list(inputs), out_dir, skip_bad=options.skip_bad, progress=not options.quiet
    )
    return f"detections of {n_ok} images written to {out_dir} (CSV, JSON, overlays/)" + (
        f"; {n_bad} files skipped (listed in detections.csv)" if n_bad else ""
    )


#: task name -> its predictor; every registered task has one.
PREDICTORS: dict[str, Callable[[Path, Sequence[Path], PredictOptions], str]] = {
    CLASSIFICATION.name: _classify,
    SEGMENTATION.name: _segment,
    REGISTRATION.name: _register,
    DETECTION.name: _detect,
}


def predict_command(run_dir: Path, inputs: Sequence[Path], options: PredictOptions) -> str:
    """Apply the run in ``run_dir`` to ``inputs`` and return the one-line summary to print.

    Raises:
        ConfigError: an option that does not apply to the run's task, or a bad value.
        InputError: an unusable run folder or input.
    """
    from medlens.commands.pipeline import is_pipeline_run, predict_pipeline_command

    if is_pipeline_run(run_dir):
        extra = [n for n in options.given() if n != "quiet"]
        if extra:
            raise ConfigError(f"--{extra[0].replace('_', '-')}", "does not apply to a pipeline run")
        return predict_pipeline_command(run_dir, inputs, options.out)
    task = read_run_task(run_dir)
    check_options(task, options, run_dir)
    return PREDICTORS[task.name](run_dir, inputs, options)
