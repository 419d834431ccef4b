"""One study through a run's model: pulled from Orthanc, processed, results stored back.

Which series a run takes: a 3D run (``input_shape`` with three spatial axes) takes each
CT, MR, PT or NM series as one volume; a 2D run (and every detection run) takes every
single-frame image of any image series. Never taken: non-image series (SEG, SR, KO, PR, RT*, ...) and this model's own
results, recognised by their UIDs (derived from the weights hash and the source series, see
``medlens.pacs.uids``), not by a Manufacturer anyone can write.

Re-running is safe: before a source is processed, the study's instances are listed, and a
source whose results (known in advance by their derived SOPInstanceUIDs) are all in Orthanc
is passed; a result already there is not stored again. Results are stored after each source
series, so a re-run after a kill only makes and stores what is missing.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from medlens.errors import InputError
from medlens.inference.detection_run import DetectionRunModel, load_detection_run
from medlens.inference.loaded_run import load_run
from medlens.pacs.client import OrthancClient, RetryPolicy, SeriesInfo
from medlens.pacs.results import (
    PacsRun,
    ResultObject,
    Scratch,
    expected_instance_uids,
    medlens_series_uids,
    model_identity,
    result_kinds,
    results_for_images,
    results_for_volume,
)
from medlens.pacs.sr import ModelIdentity
from medlens.pacs.uids import check_uid
from medlens.run_folder import layout
from medlens.run_folder.reader import read_run_task

VOLUME_MODALITIES = frozenset({"CT", "MR", "PT", "NM"})
NON_IMAGE_MODALITIES = frozenset(
    {"SEG", "SR", "KO", "PR", "DOC", "REG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "ECG"}
)


@dataclass
class StoredObject:
    """One result stored in Orthanc.

    Attributes:
        kind: ``"segmentation"``, ``"report"``, ``"overlay"`` or ``"detections"``.
        sop_class_uid, series_instance_uid, sop_instance_uid: its UIDs.
        source_series_uid: the series it was made from.
        probabilities, decision: the classification it reports (empty / "" otherwise);
            ``decision`` is the class, or ``refer`` for a case referred to a human reader.
        predicted_class: the model's class at its threshold, also for a referred case ("" for
            other results).
        counts: class name -> objects found, for a detection SR (empty otherwise).
    """

    kind: str
    sop_class_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    source_series_uid: str
    probabilities: dict[str, float] = field(default_factory=dict)
    decision: str = ""
    predicted_class: str = ""
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class ProcessResult:
    """What ``process_study`` did with one study.

    Attributes:
        study_instance_uid: the study.
        task: the run's task (``classification``, ``segmentation`` or ``detection``).
        transport: ``"dicomweb"`` or ``"rest"``: how images travelled.
        model: the model and the hash of its weights.
        stored: the objects stored back into the study by this call.
        already_stored: SOPInstanceUIDs of this model's results that Orthanc held already
            (from an earlier, possibly interrupted, run): not made or stored again.
        skipped: one ``"<what>: <reason>"`` line per series or image left out.
    """

    study_instance_uid: str
    task: str
    transport: str
    model: ModelIdentity
    stored: list[StoredObject] = field(default_factory=list)
    already_stored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a person: what was stored where."""
        kinds: dict[str, int] = {}
        for obj in self.stored:
            kinds[obj.kind] = kinds.get(obj.kind, 0) + 1
        made = ", ".join(f"{n} {kind}" for kind, n in kinds.items()) or "nothing new"
        already = f"; {len(self.already_stored)} already there" if self.already_stored else ""
        skipped = f"; {len(self.skipped)} left out" if self.skipped else ""
        return (
            f"study {self.study_instance_uid}: stored {made} by {self.model.algorithm_name} "
            f"({self.transport}){already}{skipped}"
        )


def load_pacs_run(run_dir: str | Path) -> PacsRun:
    """The run folder loaded for inference: a detection run as a detector, any other as
    ``load_run`` loads it.

    Raises:
        InputError: naming the missing, unreadable or inconsistent file of the run folder.
    """
    if read_run_task(run_dir).predicts_boxes:
        return load_detection_run(run_dir)
    return load_run(run_dir)


def run_spatial_dims(run: PacsRun) -> int:
    """2 or 3: the spatial axes of the run's inputs (from the ``input_shape`` it recorded;
    a detector takes 2D images).

    Raises:
        InputError: the run recorded no input shape.
    """
    if isinstance(run, DetectionRunModel):
        return 2
    if not run.input_shape:
        raise InputError(
            run.run_dir / layout.MODEL,
            "records no input shape, so which images the model takes is unknown; retrain it",
        )
    return len(run.input_shape) - 1


def our_series(series: list[SeriesInfo], model: ModelIdentity) -> set[str]:
    """The SeriesInstanceUIDs among ``series`` that hold this model's results (whose UIDs
    are derived from another series of the study)."""
    ours = medlens_series_uids(model, [s.series_instance_uid for s in series])
    return {s.series_instance_uid for s in series} & ours


def usable_series(
    series: list[SeriesInfo], spatial_dims: int, ours: set[str] | frozenset[str] = frozenset()
) -> list[SeriesInfo]:
    """The series a run with ``spatial_dims`` spatial axes can take (see the module doc);
    ``ours``: SeriesInstanceUIDs of the model's own results, never taken."""
    out = []
    for item in series:
        if item.series_instance_uid in ours or item.modality in NON_IMAGE_MODALITIES:
            continue
        if spatial_dims == 3 and item.modality not in VOLUME_MODALITIES:
            continue
        out.append(item)
    return out


def process_study(
    orthanc_url: str,
    study_uid: str,
    run_dir: str | Path,
    auth: tuple[str, str] | None = None,
    dicomweb: str = "auto",
    retry: RetryPolicy | None = None,
    ca_bundle: str | Path | None = None,
) -> ProcessResult:
    """Pull a study from Orthanc, run a run folder's model on it, and store the results back
    into the same study.

    A segmentation run stores a DICOM SEG per series (or per image, for 2D runs, in one
    result series per source series) that references its source; a classification run
    stores a Basic Text SR (probabilities per class, decision, model name and weights
    SHA-256, references to the source instances) and a Secondary Capture of the Grad-CAM
    overlay; a detection run stores a Comprehensive 3D SR per image (TID 1500, one planar
    ROI per finding, in the image's pixel coordinates). See ``medlens.pacs.results``. Results already in Orthanc (same model, same
    source) are not stored again.

    Args:
        orthanc_url: e.g. ``http://127.0.0.1:8042``.
        study_uid: the StudyInstanceUID.
        run_dir: a finished run folder.
        auth: ``(user, password)`` for Orthanc, or None.
        dicomweb: ``"auto"``, ``"on"`` or ``"off"``: images through DICOMweb or REST.
        retry: how transient HTTP failures are retried (default ``RetryPolicy()``).
        ca_bundle: PEM file of the CAs to trust for an HTTPS Orthanc.

    Raises:
        InputError: the run folder is unusable, the study is not on the server, it holds no
            series the run can take (the message lists what it holds and why each
            candidate was left out), or a UID the server gave is not a DICOM UID.
        PacsError: Orthanc is unreachable, refuses the credentials, or fails a request.
    """
    run = load_pacs_run(run_dir)
    with OrthancClient(
        orthanc_url, auth=auth, dicomweb=dicomweb, retry=retry, ca_bundle=ca_bundle
    ) as client:
        return process_with_client(client, run, model_identity(run), study_uid)


def process_with_client(
    client: OrthancClient,
    run: PacsRun,
    model: ModelIdentity,
    study_uid: str,
    study_id: str | None = None,
) -> ProcessResult:
    """``process_study`` with an open client and a loaded run (what ``watch`` reuses).

    Args:
        study_id: Orthanc's identifier of the study, when known (saves a lookup).
    """
    study_uid = check_uid(study_uid, "StudyInstanceUID", "--study")
    transport = "dicomweb" if client.uses_dicomweb else "rest"  # "on" without plugin: fail now
    study_id = study_id or client.find_study(study_uid)
    series = client.study_series(study_id)
    dims = run_spatial_dims(run)
    ours = our_series(series, model)
    candidates = usable_series(series, dims, ours)
    where = f"study {study_uid}"
    if not candidates:
        raise InputError(
            where,
            f"holds no series a {dims}D {run.config.task} run can take; it holds: "
            f"{_listing(series, ours)}",
        )
    instances = client.study_instances(study_id)
    present = {instance.sop_instance_uid for instance in instances}
    sources: dict[str, list[str]] = defaultdict(list)
    for instance in instances:
        sources[instance.series_id].append(instance.sop_instance_uid)
    result = ProcessResult(
        study_instance_uid=study_uid,
        task=run.config.task,
        transport=transport,
        model=model,
    )
    kinds = result_kinds(run)
    with tempfile.TemporaryDirectory(prefix="medlens-pacs-") as tmp:
        work = Path(tmp)
        for index, item in enumerate(candidates):
            source = item.series_instance_uid
            if dims == 3:
                expected = expected_instance_uids(model, kinds, source)
            else:
                expected = [
                    uid
                    for sop in sources.get(item.orthanc_id, [])
                    for uid in expected_instance_uids(model, kinds, source, sop)
                ]
            if expected and all(uid in present for uid in expected):
                result.already_stored += expected
                continue
            folder = work / f"series_{index:03d}"
            scratch = Scratch(work / f"results_{index:03d}")
            scratch.folder.mkdir()
            files = client.download_series(study_uid, item, folder)
            objects: list[ResultObject] = []
            try:
                if dims == 3:
                    objects = results_for_volume(run, model, folder, scratch)
                else:
                    made = results_for_images(run, model, files, scratch, present)
                    objects = made.objects
                    result.already_stored += made.present
                    result.skipped += [f"series {source} {s}" for s in made.skipped]
            except InputError as exc:
                result.skipped.append(f"series {source}: {exc.reason}")
            new = [obj for obj in objects if obj.sop_instance_uid not in present]
            result.already_stored += [
                obj.sop_instance_uid for obj in objects if obj.sop_instance_uid in present
            ]
            client.store([obj.data for obj in new])  # after each series: a kill loses little
            present |= {obj.sop_instance_uid for obj in new}
            result.stored += [_stored(obj) for obj in new]
    if not result.stored and not result.already_stored:
        raise InputError(where, "no series could be processed: " + "; ".join(result.skipped))
    return result


def _stored(obj: ResultObject) -> StoredObject:
    return StoredObject(
        kind=obj.kind,
        sop_class_uid=obj.sop_class_uid,
        series_instance_uid=obj.series_instance_uid,
        sop_instance_uid=obj.sop_instance_uid,
        source_series_uid=obj.source_series_uid,
        probabilities=dict(obj.finding.probabilities) if obj.finding else {},
        decision=obj.finding.decision if obj.finding else "",
        predicted_class=obj.finding.predicted_class if obj.finding else "",
        counts=dict(obj.counts),
    )


def _listing(series: list[SeriesInfo], ours: set[str]) -> str:
    if not series:
        return "no series"
    return "; ".join(
        f"{s.modality or '?'} ({len(s.instance_ids)} instances"
        f"{', by this model' if s.series_instance_uid in ours else ''})"
        for s in series
    )
