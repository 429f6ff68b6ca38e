"""What every exporter shares: options, the source series, UIDs, writing and importing.

Exported objects are new instances in the *source's study* (patient and study
attributes are taken from the source), with new Series and SOP Instance UIDs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset

from dicomstation.errors import ExportError, InvalidDicomError, LoadError
from dicomstation.export.encode import encode_file
from dicomstation.export.source_headers import require_identity, sanitized, snap_orientations
from dicomstation.volumes.fastdataset import read_header

if TYPE_CHECKING:
    from dicomstation.database import Database
    from dicomstation.models import TransferReport
    from dicomstation.processing.stats import SegmentStatistics
    from dicomstation.volumes import LoadedVolume

__all__ = [
    "ExportOptions",
    "SourceSeries",
    "apply_options",
    "import_into",
    "new_uid",
    "pixel_area_mm2",
    "projection_pixel_area",
    "require_frame_of_reference",
    "unplaced_image",
    "with_areas",
    "write_datasets",
]

SOFTWARE_VERSION = "dicomstation 0.1"


def new_uid() -> str:
    """Return a new UID (highdicom's UID generator, under its registered root)."""
    return str(hd.UID())


@dataclass(frozen=True)
class ExportOptions:
    """Options common to every exported object (Slicer's DICOM export dialog).

    Parameters
    ----------
    series_description : str or None
        SeriesDescription; each exporter has a sensible default.
    series_number : int or None
        SeriesNumber; by default the source's series number plus an offset.
    institution_name, institution_address, institutional_department_name : str or None
        Institution tags written on the new object.
    manufacturer, manufacturer_model_name, device_serial_number : str
        Equipment that made the object (this software).
    content_creator_name : str or None
        Person who made the result (DICOM PN, ``FAMILY^GIVEN``).
    """

    series_description: str | None = None
    series_number: int | None = None
    institution_name: str | None = None
    institution_address: str | None = None
    institutional_department_name: str | None = None
    manufacturer: str = "dicomstation"
    manufacturer_model_name: str = "dicomstation"
    device_serial_number: str = "1"
    software_versions: str = SOFTWARE_VERSION
    content_creator_name: str | None = None

    def number(self, source: Dataset, offset: int) -> int:
        """The series number to use: the option, or the source's plus ``offset``."""
        if self.series_number is not None:
            return self.series_number
        base = source.get("SeriesNumber")
        return (int(base) if base not in (None, "") else 0) + offset

    def description(self, default: str) -> str:
        """The series description to use (truncated to the LO limit of 64)."""
        return (self.series_description or default)[:64]


def apply_options(ds: Dataset, options: ExportOptions) -> None:
    """Write the institution tags of ``options`` onto ``ds`` (General Equipment module)."""
    for keyword in ("institution_name", "institution_address", "institutional_department_name"):
        value = getattr(options, keyword)
        if value:
            setattr(ds, "".join(part.title() for part in keyword.split("_")), value)


@dataclass(frozen=True)
class SourceSeries:
    """A source image series: its datasets (with pixels) and their volume.

    Attributes
    ----------
    datasets : tuple of pydicom.Dataset
        The series' instances, in file order.
    volume : highdicom.Volume
        The series as a volume (modality LUT applied: HU for CT).
    paths : tuple of Path
        Where the datasets were read from (empty when built in memory).
    """

    datasets: tuple[Dataset, ...]
    volume: hd.Volume
    paths: tuple[Path, ...] = field(default=(), compare=False)

    @classmethod
    def from_datasets(cls, datasets: Sequence[Dataset]) -> SourceSeries:
        """Build from in-memory datasets (raises LoadError when not a volume)."""
        if not datasets:
            raise LoadError("no source datasets given")
        for ds in datasets:
            require_identity(ds, ds.get("SOPInstanceUID") or "a source dataset")
        try:
            volume = hd.get_volume_from_series(list(datasets))
        except (ValueError, RuntimeError, AttributeError, KeyError) as exc:
            uid = datasets[0].get("SeriesInstanceUID", "?")
            raise LoadError(f"series {uid} cannot be loaded as a volume: {exc}") from exc
        copies = [sanitized(ds, copy=True) for ds in datasets]
        return cls(datasets=tuple(snap_orientations(copies)), volume=volume)

    @classmethod
    def from_loaded(cls, loaded: LoadedVolume) -> SourceSeries:
        """Build from a volume loaded by :func:`dicomstation.volumes.load_series`.

        The source datasets are the headers (no pixel data) of the instances of
        the loaded volume (its first time point for a 4D series).
        """
        if loaded.volume.number_of_channel_dimensions != 0:
            raise ExportError(f"series {loaded.series_instance_uid} is not a scalar volume")
        files = tuple(dict.fromkeys(source.path for source in loaded.slice_sources))
        datasets = []
        for path in files:
            try:
                ds = read_header(path)  # what dcmread(path, stop_before_pixels=True) makes
            except (pydicom.errors.InvalidDicomError, OSError, EOFError) as exc:
                raise InvalidDicomError(str(path), str(exc)) from exc
            datasets.append(sanitized(ds, copy=False))
        for path, header in zip(files, datasets, strict=True):
            require_identity(header, path)
        return cls(datasets=tuple(snap_orientations(datasets)), volume=loaded.volume, paths=files)

    @classmethod
    def from_files(cls, paths: Iterable[Path | str]) -> SourceSeries:
        """Load the files of one series (:func:`dicomstation.volumes.load_series`)."""
        from dicomstation.volumes import load_series

        return cls.from_loaded(load_series(list(paths)))

    @property
    def first(self) -> Dataset:
        """The first dataset: the template for patient, study and equipment attributes."""
        return self.datasets[0]

    @property
    def series_uid(self) -> str:
        """SeriesInstanceUID of the source."""
        return str(self.first.SeriesInstanceUID)

    @property
    def modality(self) -> str:
        """Modality of the source (``CT``, ``MR``...)."""
        return str(self.first.get("Modality", ""))

    def datasets_at(self, volume: hd.Volume) -> list[Dataset | None]:
        """The single-frame source instance at each slice position of ``volume`` (or None).

        Positions match when they agree to :data:`POSITION_TOLERANCE` mm on every
        axis (the last such instance in file order wins, as for duplicates).
        """
        placed = [
            (n, ds)
            for n, ds in enumerate(self.datasets)
            if "ImagePositionPatient" in ds and int(ds.get("NumberOfFrames", 1) or 1) == 1
        ]
        slices = volume.spatial_shape[0]
        if not placed or slices == 0:
            return [None] * slices
        sources = np.array([_floats(ds.ImagePositionPatient) for _, ds in placed])
        affine = np.asarray(volume.affine, dtype=float)
        planes = affine[:3, 3] + np.arange(slices)[:, None] * affine[:3, 0]  # slice k's corner
        close = np.all(np.abs(planes[:, None, :] - sources[None, :, :]) <= POSITION_TOLERANCE, -1)
        found: list[Dataset | None] = []
        for row in close:
            hits = np.flatnonzero(row)
            found.append(placed[int(hits[-1])][1] if hits.size else None)
        return found

    def datasets_in_order(self, volume: hd.Volume) -> list[Dataset] | None:
        """Source instances matching ``volume`` slice for slice (same grid), else None."""
        rows, columns = volume.spatial_shape[1:]
        orientation = _floats(volume.get_plane_orientation()[0].ImageOrientationPatient)
        spacing = _floats(volume.get_pixel_measures()[0].PixelSpacing)
        matches = self.datasets_at(volume)
        ordered = [ds for ds in matches if ds is not None]
        if len(ordered) != len(matches):
            return None
        for ds in ordered:
            if (ds.Rows, ds.Columns) != (rows, columns):
                return None
            same_plane = _agree(ds.ImageOrientationPatient, orientation) and _agree(
                ds.PixelSpacing, spacing
            )
            if not same_plane:
                return None
        return ordered

    def check_geometry(self, volume: hd.Volume, what: str) -> None:
        """Raise ExportError unless ``volume`` is in the source's frame of reference."""
        source_for = self.volume.frame_of_reference_uid
        if volume.frame_of_reference_uid not in (None, source_for):
            raise ExportError(
                f"{what} is in frame of reference {volume.frame_of_reference_uid}, "
                f"not that of series {self.series_uid} ({source_for})"
            )
        if not np.all(np.isfinite(volume.affine)):
            raise ExportError(f"{what} has a non-finite affine")


def unplaced_image(source: SourceSeries) -> Dataset | None:
    """The one image of ``source`` when it is a single frame without patient geometry.

    A projection image (CR, DX, MG, a single ultrasound frame...) has no Image
    Position Patient: a SEG of it references the image and has no plane positions
    (highdicom allows this for one source frame).
    """
    if len(source.datasets) != 1:
        return None
    ds = source.datasets[0]
    return ds if _unplaced(ds) else None


def _unplaced(ds: Dataset) -> bool:
    placed = "ImagePositionPatient" in ds or "PerFrameFunctionalGroupsSequence" in ds
    return int(ds.get("NumberOfFrames", 1) or 1) == 1 and not placed


def projection_pixel_area(loaded: LoadedVolume) -> float | None:
    """Pixel area (mm2) of a loaded projection image (see :func:`unplaced_image`), else None.

    Reads the one file's header: a segment of it has an area, not a volume.
    """
    if len(loaded.sop_instance_uids) != 1 or not loaded.sources or not loaded.sources[0]:
        return None
    tags = ["ImagePositionPatient", "PerFrameFunctionalGroupsSequence", "NumberOfFrames",
            "PixelSpacing", "ImagerPixelSpacing"]  # fmt: skip
    try:
        ds = pydicom.dcmread(loaded.sources[0][0].path, stop_before_pixels=True, specific_tags=tags)
    except (OSError, pydicom.errors.InvalidDicomError):
        return None
    return pixel_area_mm2(ds) if _unplaced(ds) else None


def with_areas(
    statistics: Sequence[SegmentStatistics], source: SourceSeries
) -> tuple[SegmentStatistics, ...]:
    """``statistics`` with ``area_mm2`` set on a projection image that gives its pixel size."""
    image = unplaced_image(source)
    pixel = pixel_area_mm2(image) if image is not None else None
    if pixel is None:
        return tuple(statistics)
    return tuple(
        s if s.area_mm2 is not None else replace(s, area_mm2=s.voxel_count * pixel)
        for s in statistics
    )


def pixel_area_mm2(image: Dataset) -> float | None:
    """The area of one pixel of a projection image (Pixel, else Imager Pixel Spacing), if given."""
    spacing = image.get("PixelSpacing") or image.get("ImagerPixelSpacing")
    if not spacing or len(spacing) != 2:
        return None
    return float(spacing[0]) * float(spacing[1])


def require_frame_of_reference(source: SourceSeries, what: str) -> None:
    """Raise ExportError unless every source image is placed in a patient frame of reference.

    That is: a Frame of Reference UID and patient geometry (Image Position
    Patient, or plane positions in the functional groups of a multi-frame image).
    """
    for ds in source.datasets:
        placed = "ImagePositionPatient" in ds or "PerFrameFunctionalGroupsSequence" in ds
        if not ds.get("FrameOfReferenceUID") or not placed:
            raise ExportError(
                f"series {source.series_uid} has no Frame of Reference UID or no patient "
                f"geometry ({ds.get('SOPInstanceUID', '?')}): {what} needs source images "
                "placed in a patient frame of reference"
            )


#: Source and volume slice positions closer than this (mm, on each axis) are one position.
POSITION_TOLERANCE = 0.005


def _floats(values: Iterable[object]) -> list[float]:
    return [float(str(v)) for v in values]


def _agree(values: Iterable[object], reference: Sequence[float], tol: float = 1e-4) -> bool:
    """Whether decimal values equal ``reference`` within ``tol`` (np.allclose's rule, cheaply)."""
    numbers = _floats(values)
    return len(numbers) == len(reference) and all(
        abs(a - b) <= tol + 1e-5 * abs(b) for a, b in zip(numbers, reference, strict=True)
    )


def write_datasets(datasets: Iterable[Dataset], folder: Path) -> list[Path]:
    """Save each dataset as ``<SOPInstanceUID>.dcm`` under ``folder`` (DICOM file format).

    Each is encoded in memory (:func:`~dicomstation.export.encode.encode_file`: the bytes
    pydicom's ``save_as`` writes) and written at once; only one encoded dataset is held
    at a time.

    Raises
    ------
    ExportError
        When a dataset cannot be encoded; files already written are removed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        try:
            path.write_bytes(encode_file(ds))
        except (ValueError, TypeError, AttributeError, OSError) as exc:
            for done in [*written, path]:
                done.unlink(missing_ok=True)
            raise ExportError(f"cannot write {ds.SOPInstanceUID}: {exc}") from exc
        written.append(path)
    return written


def import_into(db: Database, datasets: Sequence[Dataset]) -> TransferReport:
    """Write ``datasets`` to a temporary folder and move them into the local database."""
    with tempfile.TemporaryDirectory(prefix="dicomstation-export-") as tmp:
        paths = write_datasets(datasets, Path(tmp))
        return db.add_files(paths, move=True)
