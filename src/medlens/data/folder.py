"""A folder with one sub-folder per class as a case source."""

from __future__ import annotations

from pathlib import Path

from medlens.data.case import Case
from medlens.data.dicom import is_dicom_file, read_dicom_dataset
from medlens.data.dicom_series import series_files
from medlens.data.image import Image
from medlens.data.readers import image_format, read_image
from medlens.errors import InputError

SPLIT_FOLDERS = ("train", "val", "test")
_IGNORED = {"thumbs.db", "desktop.ini"}


def _visible(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if not p.name.startswith(".") and p.name.lower() not in _IGNORED
    )


class ImageFolderSource:
    """Cases from ``root/<class>/<entry>`` (class names sorted), read lazily with ``read_image``.

    Each entry of a class folder is one case: an image file (PNG, JPEG, TIFF, DICOM, NIfTI,
    ``.npy``), or a sub-folder. A sub-folder holding DICOM files is one case (a series); any
    other sub-folder is one patient whose image files are cases with ``patient_id`` set to the
    sub-folder's name. When every folder under ``root`` is ``train``/``val``/``test``, those
    give the official split: ``root/<split>/<class>/<entry>``.

    Args:
        root: the folder.
        class_names: the classes in label order; default: the sorted sub-folder names.
        read_patient_ids: take ``patient_id`` from the DICOM ``PatientID`` of DICOM cases
            (reads one header per case), so random splits keep a patient's studies together.

    Raises:
        InputError: no such folder, a file that is not an image, a class folder missing from
            ``class_names``, or no cases at all.
    """

    def __init__(
        self, root: str | Path, class_names: list[str] | None = None, read_patient_ids: bool = False
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(self.root, "is not a folder")
        self.read_patient_ids = read_patient_ids
        tops = _visible(self.root)
        for path in tops:
            if not path.is_dir():
                raise InputError(path, "lies outside any class folder; put it in root/<class>/")
        has_splits = bool(tops) and all(p.name in SPLIT_FOLDERS for p in tops)
        layout = [(p.name, _visible(p)) for p in tops] if has_splits else [(None, tops)]
        found = sorted({c.name for _, classes in layout for c in classes if c.is_dir()})
        self.class_names = list(class_names) if class_names is not None else found
        self.cases: list[Case] = []
        for split, class_dirs in layout:
            for class_dir in class_dirs:
                self._add_class(split, class_dir)
        if not self.cases:
            raise InputError(self.root, "holds no images in class sub-folders")

    def _add_class(self, split: str | None, class_dir: Path) -> None:
        if not class_dir.is_dir():
            raise InputError(class_dir, "lies outside any class folder; put it in root/<class>/")
        if class_dir.name not in self.class_names:
            raise InputError(
                class_dir,
                f"class folder {class_dir.name!r} is not one of class_names {self.class_names}",
            )
        label = self.class_names.index(class_dir.name)
        for entry in _visible(class_dir):
            if entry.is_dir() and not _holds_dicom(entry):
                for path in _visible(entry):
                    self._add_case(path, label, split, patient=entry.name)
            else:
                self._add_case(entry, label, split, patient=None)

    def _add_case(self, path: Path, label: int, split: str | None, patient: str | None) -> None:
        kind = image_format(path)
        if kind is None or (kind == "dicom_series" and not _holds_dicom(path)):
            raise InputError(path, "is not an image medlens reads; move it out of the class folder")
        case_id = path.relative_to(self.root).as_posix()
        if self.read_patient_ids and kind in ("dicom", "dicom_series"):
            header_file = path if kind == "dicom" else series_files(path)[0]
            patient = (
                str(read_dicom_dataset(header_file, header_only=True).get("PatientID", ""))
                or patient
            )
        self.cases.append(
            Case(
                case_id=case_id,
                label=label,
                split=split,
                patient_id=patient or case_id,
                source=str(path),
            )
        )

    def load(self, case: Case) -> Image:
        """Read the case's file (or DICOM series folder)."""
        return read_image(case.source)


def _holds_dicom(folder: Path) -> bool:
    files = series_files(folder)
    return bool(files) and (
        is_dicom_file(files[0]) or files[0].suffix.lower() in (".dcm", ".dicom")
    )
