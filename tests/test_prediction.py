"""Input discovery for ``medlens predict``: files, folders, DICOM series, .npz entries."""

from __future__ import annotations

import shutil
from pathlib import Path

from medlens.inference.discovery import iter_input_cases


def test_folders_expand_to_files_and_a_dicom_folder_is_one_series_for_3d(
    ct_dir: Path, tmp_path: Path
) -> None:
    series = tmp_path / "study" / "series1"
    shutil.copytree(ct_dir, series)
    (tmp_path / "study" / ".hidden.png").write_bytes(b"")
    flat = list(iter_input_cases([tmp_path / "study"]))
    assert [Path(f).name for _, f, _ in flat] == sorted(p.name for p in ct_dir.glob("*.dcm"))

    volumes = list(iter_input_cases([tmp_path / "study"], volumes=True))
    assert [case_id for case_id, _, _ in volumes] == [str(series)]
    volume = volumes[0][2]()
    assert volume.array.shape[:2] == (1, 3) and volume.spatial_dims == 3
    assert abs(volume.spacing[0] - 1.0) < 1e-6  # mm between slices
