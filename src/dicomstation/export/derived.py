"""A processed scalar volume as a new derived image series (Slicer's scalar-volume export).

highdicom has no writer for classic single-frame images, so this module copies
the source's own IOD (CT, MR, PET... Image Storage): patient, study, frame of
reference and modality attributes are taken from the source instance, and the
derived series gets new Series/SOP UIDs, ImageType DERIVED\\SECONDARY, a
Derivation Description and Code, a Source Image Sequence (purpose 121322
"Source image for image processing operation") on every image and a
Referenced Series Sequence naming the source series. Image planes come from
the volume's affine, so resampled volumes are written with their own geometry.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import DSfloat

from dicomstation.errors import ExportError
from dicomstation.export.common import ExportOptions, SourceSeries, apply_options, new_uid
from dicomstation.export.iod import apply_conditions, conform, iod_attributes

__all__ = ["build_derived_series"]

# Attributes of the source instance that do not describe the derived image.
_DROP = (
    "PixelData",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "LargestImagePixelValue",
    "SmallestImagePixelValue",
    "WindowCenterWidthExplanation",
    "IconImageSequence",
    "SourceImageSequence",
    "DerivationCodeSequence",
    "ReferencedImageSequence",
    "ReferencedSeriesSequence",
    "RescaleType",
    "VOILUTSequence",
    "ModalityLUTSequence",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
    "ContributingEquipmentSequence",
    "RequestAttributesSequence",
    "SliceLocation",
    "DataSetTrailingPadding",
)
_MODALITY_LUT = {"CT", "PT", "CR", "DX", "MG", "XA", "RF", "NM"}
#: Modalities whose classic image IODs carry an image plane and 16-bit signed pixels.
_PLANE_IODS = ("CT", "MR", "PT")
_INT16 = (-32768, 32767)


def _ds(values: Sequence[Any]) -> list[DSfloat]:
    """Decimal strings that fit the DS limit of 16 characters."""
    return [DSfloat(float(v), auto_format=True) for v in values]


def _template(source: Dataset, options: ExportOptions) -> Dataset:
    ds = conform(source, str(source.SOPClassUID))  # only what the IOD defines
    for keyword in _DROP:
        if keyword in ds:
            delattr(ds, keyword)
    now = datetime.datetime.now()
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SeriesDate, ds.SeriesTime = ds.ContentDate, ds.ContentTime
    ds.Manufacturer = options.manufacturer
    ds.ManufacturerModelName = options.manufacturer_model_name
    ds.SoftwareVersions = options.software_versions
    ds.DeviceSerialNumber = options.device_serial_number
    apply_options(ds, options)
    return ds


def _encoding(array: npt.NDArray[np.floating], modality: str) -> tuple[float, float]:
    """Return (slope, intercept) so that ``value = stored * slope + intercept`` with int16 storage.

    Integral values, and wide ranges (HU) where integer precision is enough, are
    stored as they are; narrow float ranges are spread over the int16 range.
    Modalities without a Modality LUT (MR...) are always stored as integers.
    """
    low, high = float(np.min(array)), float(np.max(array))
    fits = low >= _INT16[0] and high <= _INT16[1]
    if modality not in _MODALITY_LUT:
        if not fits:
            raise ExportError(f"values {low}..{high} do not fit {modality} images (int16)")
        return 1.0, 0.0
    if fits and (high - low > 1000 or np.array_equal(array, np.round(array))):
        return 1.0, 0.0
    if modality == "PT":  # the PET Image module requires a zero intercept
        return (max(abs(low), abs(high)) / _INT16[1]) or 1.0, 0.0
    slope = (high - low) / 65535 if high > low else 1.0
    return slope, low + 32768 * slope


def _references(source: SourceSeries) -> tuple[DicomSequence, DicomSequence]:
    purpose = hd.sr.CodedConcept.from_code(codes.DCM.SourceImageForImageProcessingOperation)
    images, instances = [], []
    for ds in source.datasets:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = (
            ds.SOPClassUID,
            ds.SOPInstanceUID,
        )
        instances.append(copy.deepcopy(item))
        item.PurposeOfReferenceCodeSequence = [purpose]
        images.append(item)
    series = Dataset()
    series.SeriesInstanceUID = source.series_uid
    series.ReferencedInstanceSequence = instances
    return DicomSequence(images), DicomSequence([series])


def _series_template(
    source: SourceSeries, volume: hd.Volume, options: ExportOptions, derivation: Code, text: str
) -> Dataset:
    first = source.first
    ds = _template(first, options)
    ds.SeriesInstanceUID = new_uid()
    ds.SeriesNumber = options.number(first, 100)
    ds.SeriesDescription = options.description(
        f"{first.get('SeriesDescription', '')} {text}".strip()
    )
    ds.ImageType = ["DERIVED", "SECONDARY", *list(first.get("ImageType", []))[2:]]
    ds.DerivationDescription = text[:1024]
    ds.DerivationCodeSequence = [hd.sr.CodedConcept.from_code(derivation)]
    ds.ImageOrientationPatient = _ds(volume.get_plane_orientation()[0].ImageOrientationPatient)
    ds.PixelSpacing = _ds(volume.get_pixel_measures()[0].PixelSpacing)
    ds.SliceThickness = _ds([volume.spacing_between_slices])[0]
    if volume.frame_of_reference_uid:
        ds.FrameOfReferenceUID = volume.frame_of_reference_uid
    ds.Rows, ds.Columns = volume.spatial_shape[1], volume.spatial_shape[2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    for keyword in ("PlanarConfiguration", "NumberOfFrames", "RescaleSlope", "RescaleIntercept"):
        if keyword in ds:
            delattr(ds, keyword)
    apply_conditions(ds)  # the pixel description changed: palettes etc. no longer apply
    return ds


def _image(
    template: Dataset, plane: npt.NDArray[np.int16], position: Sequence[float], k: int
) -> Dataset:
    ds = copy.deepcopy(template)
    ds.SOPInstanceUID = new_uid()
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = _ds(position)
    ds.PixelData = np.ascontiguousarray(plane).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def _check_source(source: SourceSeries) -> None:
    """Raise ExportError unless the source IOD can carry a derived 16-bit image with a plane."""
    first = source.first
    if int(first.get("NumberOfFrames", 1) or 1) > 1:
        raise ExportError(
            f"series {source.series_uid} is multi-frame; derived export needs "
            "single-frame images (export a parametric map instead)"
        )
    try:
        allowed = iod_attributes(str(first.SOPClassUID))
    except ExportError as exc:
        raise ExportError(f"series {source.series_uid}: {exc}") from exc
    has_plane = "ImagePositionPatient" in allowed and "ImagePositionPatient" in first
    if not has_plane or "FrameOfReferenceUID" not in first or source.modality not in _PLANE_IODS:
        raise ExportError(
            f"series {source.series_uid} ({source.modality or 'no modality'}) has no patient "
            f"geometry in its IOD; derived series are written for {', '.join(_PLANE_IODS)} "
            "images (export a secondary capture instead)"
        )


def build_derived_series(
    source: SourceSeries,
    volume: hd.Volume,
    options: ExportOptions | None = None,
    *,
    derivation: Code = codes.DCM.ImageProcessing,
    description: str = "Processed",
) -> list[Dataset]:
    """Build a derived image series from a processed ``volume`` of ``source``.

    Parameters
    ----------
    source : SourceSeries
        The series the volume was computed from (single-frame images).
    volume : highdicom.Volume
        The processed scalar volume, in the source's frame of reference (it may
        have another grid, e.g. after :func:`~dicomstation.processing.resample`).
    options : ExportOptions, optional
        Series description/number, institution tags.
    derivation : pydicom.sr.coding.Code
        Derivation code (CID 7203), e.g. ``codes.DCM.Smoothing``,
        ``codes.DCM.SpatialResampling``.
    description : str
        Derivation Description (free text: the processing and its parameters).

    Returns
    -------
    list of pydicom.Dataset
        One instance per slice, same SOP Class as the source.
    """
    options = options or ExportOptions()
    source.check_geometry(volume, "derived volume")
    if volume.number_of_channel_dimensions != 0 or volume.array.ndim != 3:
        raise ExportError(f"derived series need a scalar 3D volume, got {volume.array.shape}")
    _check_source(source)
    values = np.asarray(volume.array, dtype=np.float64)
    slope, intercept = _encoding(values, source.modality)
    stored = np.clip(np.round((values - intercept) / slope), *_INT16).astype(np.int16)
    template = _series_template(source, volume, options, derivation, description)
    if source.modality in _MODALITY_LUT:
        template.RescaleSlope, template.RescaleIntercept = _ds([slope, intercept])
    images, series = _references(source)
    template.ReferencedSeriesSequence = series
    matches = source.datasets_at(volume)
    out = []
    for k, plane in enumerate(volume.get_plane_positions()):
        ds = _image(template, stored[k], plane[0].ImagePositionPatient, k)
        own = matches[k]
        ds.SourceImageSequence = (
            DicomSequence([i for i in images if i.ReferencedSOPInstanceUID == own.SOPInstanceUID])
            if own is not None
            else copy.deepcopy(images)
        )
        out.append(ds)
    return out
