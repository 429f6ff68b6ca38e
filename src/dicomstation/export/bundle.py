"""A working session (volumes, segmentations, view settings) packed into one DICOM object.

This is dicomstation's equivalent of Slicer's "Slicer Data Bundle" (an MRB
scene zipped into a private tag of a Secondary Capture). The object is a
standard RGB **Secondary Capture** image, a screenshot of the scene, so any
viewer and PACS shows it, carrying the scene as a zip in one private block.

Private block (group 0x0099, creator ``"DICOMSTATION SCENE BUNDLE"``)::

    (0099,xx01) LO  media type of the payload: "application/zip"
    (0099,xx02) LO  payload format and version: "dicomstation-scene/1"
    (0099,xx03) UL  payload length in bytes
    (0099,xx04) OB  the zip file

The zip holds::

    scene.json                  format, version, and the lists below
    volumes/<n>.nrrd            each volume: NRRD, gzip, space left-posterior-superior
    segmentations/<n>.seg.nrrd  each segmentation: a label map NRRD with Slicer's
                                Segment<i>_Name / _Color / _LabelValue fields

``scene.json`` lists every volume (name, file, source series UID, 4x4 LPS
affine of (slice, row, column) indices, frame of reference), every
segmentation (name, file, SEG UID, affine, segments with number, label and
RGB colour) and the view settings (layout, background and foreground volume,
opacities, window, slice axis and index, cursor). Affines are stored in JSON
with full float precision, so :func:`load_scene` restores every volume and
label map voxel-for-voxel on the same grid. The NRRD files open directly in
3D Slicer (``.seg.nrrd`` as a Segmentation) for inspection.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import highdicom as hd
import nrrd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from dicomstation.errors import ExportError
from dicomstation.export.common import ExportOptions, SourceSeries
from dicomstation.export.sc import (
    Overlay,
    Rendering,
    blend,
    build_sc,
    draw_overlays,
    render_slice,
)

__all__ = [
    "BUNDLE_CREATOR",
    "BUNDLE_FORMAT",
    "Scene",
    "SceneSegment",
    "SceneSegmentation",
    "SceneVolume",
    "ViewSettings",
    "build_bundle",
    "is_bundle",
    "load_scene",
]

BUNDLE_GROUP = 0x0099
BUNDLE_CREATOR = "DICOMSTATION SCENE BUNDLE"
BUNDLE_FORMAT = "dicomstation-scene/1"
_MEDIA_TYPE = "application/zip"


@dataclass(frozen=True)
class SceneVolume:
    """A scalar volume of the scene."""

    name: str
    volume: hd.Volume
    series_uid: str | None = None


@dataclass(frozen=True)
class SceneSegment:
    """One segment of a scene segmentation (label value ``number``)."""

    number: int
    label: str
    color: tuple[int, int, int] = (128, 174, 128)


@dataclass(frozen=True)
class SceneSegmentation:
    """A segmentation of the scene as an integer label map."""

    name: str
    labelmap: hd.Volume
    segments: tuple[SceneSegment, ...]
    seg_uid: str | None = None


@dataclass(frozen=True)
class ViewSettings:
    """How the scene is shown (a small, explicit subset of a Slicer view).

    Attributes
    ----------
    layout : str
        ``"axial"``, ``"coronal"``, ``"sagittal"``, ``"four-up"``...
    background, foreground : str or None
        Names of the volumes shown as background and foreground.
    foreground_opacity, label_opacity : float
        Opacities (0-1) of the foreground volume and of label maps.
    window : (center, width) or None
        Display window of the background volume.
    slice_axis, slice_index : int, int or None
        The slice shown (array axis of the background volume, index along it).
    cursor_mm : (x, y, z) or None
        Crosshair position, LPS millimetres.
    """

    layout: str = "axial"
    background: str | None = None
    foreground: str | None = None
    foreground_opacity: float = 0.0
    label_opacity: float = 0.5
    window: tuple[float, float] | None = None
    slice_axis: int = 0
    slice_index: int | None = None
    cursor_mm: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class Scene:
    """A working session: volumes, segmentations and view settings."""

    volumes: tuple[SceneVolume, ...]
    segmentations: tuple[SceneSegmentation, ...] = ()
    view: ViewSettings = field(default_factory=ViewSettings)


def _nrrd_bytes(volume: hd.Volume, extra: dict[str, str] | None = None) -> bytes:
    # NRRD's fastest axis first: (column, row, slice) in Fortran order is the C array.
    affine = volume.affine
    header: dict[str, Any] = {
        "space": "left-posterior-superior",
        "space directions": np.stack([affine[:3, 2], affine[:3, 1], affine[:3, 0]]),
        "space origin": affine[:3, 3].copy(),
        "kinds": ["domain", "domain", "domain"],
        "encoding": "gzip",
    }
    header.update(extra or {})
    buffer = io.BytesIO()
    data = np.ascontiguousarray(volume.array).transpose(2, 1, 0)
    nrrd.write(buffer, data, header, compression_level=1, index_order="F")
    return buffer.getvalue()


def _read_nrrd(payload: bytes, entry: dict[str, Any]) -> hd.Volume:
    handle = io.BytesIO(payload)
    header = nrrd.read_header(handle)
    data = nrrd.read_data(header, handle, index_order="F")
    return hd.Volume(
        array=np.ascontiguousarray(np.asarray(data).transpose(2, 1, 0)),
        affine=np.asarray(entry["affine"], dtype=np.float64),
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        frame_of_reference_uid=entry.get("frame_of_reference_uid"),
    )


def _segment_fields(segments: Sequence[SceneSegment]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for i, segment in enumerate(segments):
        fields[f"Segment{i}_ID"] = f"Segment_{segment.number}"
        fields[f"Segment{i}_Name"] = segment.label
        fields[f"Segment{i}_Color"] = " ".join(f"{c / 255:.6g}" for c in segment.color)
        fields[f"Segment{i}_LabelValue"] = str(segment.number)
        fields[f"Segment{i}_Layer"] = "0"
    return fields


def _entry(name: str, file: str, volume: hd.Volume, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "file": file,
        "affine": volume.affine.tolist(),
        "frame_of_reference_uid": volume.frame_of_reference_uid,
        "dtype": str(volume.dtype),
        **more,
    }


def pack_scene(scene: Scene) -> bytes:
    """Pack ``scene`` as the bundle zip (see the module docstring for its layout)."""
    if not scene.volumes:
        raise ExportError("a scene bundle needs at least one volume")
    manifest: dict[str, Any] = {"format": BUNDLE_FORMAT, "volumes": [], "segmentations": []}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for n, item in enumerate(scene.volumes):
            file = f"volumes/{n}.nrrd"
            archive.writestr(file, _nrrd_bytes(item.volume))
            manifest["volumes"].append(
                _entry(item.name, file, item.volume, series_uid=item.series_uid)
            )
        for n, seg in enumerate(scene.segmentations):
            file = f"segmentations/{n}.seg.nrrd"
            archive.writestr(file, _nrrd_bytes(seg.labelmap, _segment_fields(seg.segments)))
            segments = [asdict(s) for s in seg.segments]
            manifest["segmentations"].append(
                _entry(seg.name, file, seg.labelmap, seg_uid=seg.seg_uid, segments=segments)
            )
        manifest["view"] = asdict(scene.view)
        archive.writestr("scene.json", json.dumps(manifest, indent=1))
    return buffer.getvalue()


def unpack_scene(payload: bytes) -> Scene:
    """Rebuild a :class:`Scene` from a bundle zip made by :func:`pack_scene`."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            manifest = json.loads(archive.read("scene.json"))
            if manifest.get("format") != BUNDLE_FORMAT:
                raise ExportError(f"unknown scene format {manifest.get('format')!r}")
            volumes = tuple(
                SceneVolume(e["name"], _read_nrrd(archive.read(e["file"]), e), e.get("series_uid"))
                for e in manifest["volumes"]
            )
            segmentations = tuple(_segmentation(archive, e) for e in manifest["segmentations"])
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        raise ExportError(f"scene bundle is damaged: {exc}") from exc
    view = manifest.get("view", {})
    for key in ("window", "cursor_mm"):
        if view.get(key) is not None:
            view[key] = tuple(view[key])
    return Scene(volumes, segmentations, ViewSettings(**view))


def _rgb(value: Sequence[Any]) -> tuple[int, int, int]:
    red, green, blue = (int(c) for c in value)
    return red, green, blue


def _segmentation(archive: zipfile.ZipFile, entry: dict[str, Any]) -> SceneSegmentation:
    segments = tuple(
        SceneSegment(int(s["number"]), str(s["label"]), _rgb(s["color"])) for s in entry["segments"]
    )
    labelmap = _read_nrrd(archive.read(entry["file"]), entry)
    return SceneSegmentation(entry["name"], labelmap, segments, entry.get("seg_uid"))


def _screenshot_overlays(scene: Scene, background: hd.Volume) -> list[Overlay]:
    overlays = []
    for seg in scene.segmentations:
        if not seg.labelmap.geometry_equal(background):
            continue
        labels: npt.NDArray[Any] = np.asarray(seg.labelmap.array)
        for segment in seg.segments:
            mask = seg.labelmap.with_array(labels == segment.number)
            overlays.append(Overlay(mask, segment.color, scene.view.label_opacity))
    return overlays


def _screenshot(scene: Scene, background: hd.Volume, names: dict[str, SceneVolume]) -> Rendering:
    """The view: background slice, foreground blended at its opacity, label maps on top."""
    view = scene.view
    shown = render_slice(background, view.slice_index, axis=view.slice_axis, window=view.window)
    foreground = names.get(view.foreground or "")
    if (
        foreground is not None
        and view.foreground_opacity > 0
        and foreground.volume.geometry_equal(background)
    ):
        top = render_slice(foreground.volume, shown.slice_index, axis=view.slice_axis)
        shown = blend(shown, top, view.foreground_opacity)
    return draw_overlays(shown, _screenshot_overlays(scene, background))


def build_bundle(
    scene: Scene,
    source: SourceSeries,
    options: ExportOptions | None = None,
) -> Dataset:
    """Pack ``scene`` into a Secondary Capture of the study of ``source``.

    The image is a screenshot of the scene's view (background volume slice with
    the label maps drawn over it); the scene itself is in the private block.

    Returns
    -------
    pydicom.Dataset
        A highdicom ``SCImage`` carrying the bundle.
    """
    if not scene.volumes:
        raise ExportError("a scene bundle needs at least one volume")
    names = {v.name: v for v in scene.volumes}
    if len(names) != len(scene.volumes):
        raise ExportError("scene volume names must be unique")
    view = scene.view
    if view.background is not None and view.background not in names:
        raise ExportError(f"view background {view.background!r} is not a scene volume")
    background = names[view.background].volume if view.background else scene.volumes[0].volume
    rendering = _screenshot(scene, background, names)
    payload = pack_scene(scene)
    sc = build_sc(rendering, source, options, description="Scene bundle")
    block = sc.private_block(BUNDLE_GROUP, BUNDLE_CREATOR, create=True)
    block.add_new(0x01, "LO", _MEDIA_TYPE)
    block.add_new(0x02, "LO", BUNDLE_FORMAT)
    block.add_new(0x03, "UL", len(payload))
    block.add_new(0x04, "OB", payload)
    return sc


def is_bundle(dataset: Dataset) -> bool:
    """True when ``dataset`` carries a dicomstation scene bundle."""
    try:
        block = dataset.private_block(BUNDLE_GROUP, BUNDLE_CREATOR)
    except KeyError:
        return False
    return block.get_tag(0x04) in dataset


def load_scene(dataset: Dataset) -> Scene:
    """Reload the scene packed in a bundle made by :func:`build_bundle`.

    Raises
    ------
    ExportError
        When the dataset carries no bundle, or the bundle is truncated or damaged.
    """
    uid = dataset.get("SOPInstanceUID", "?")
    if not is_bundle(dataset):
        raise ExportError(f"{uid} carries no dicomstation scene bundle")
    block = dataset.private_block(BUNDLE_GROUP, BUNDLE_CREATOR)
    payload = bytes(block[0x04].value)
    size = dataset.get(block.get_tag(0x03))
    length = size.value if size is not None else len(payload)
    if isinstance(length, bytes):  # read back from an implicit-VR copy: raw UL
        length = int.from_bytes(length[:4], "little")
    if int(length) > len(payload):
        raise ExportError(f"{uid}: scene bundle is truncated ({len(payload)} of {length} bytes)")
    return unpack_scene(payload[: int(length)])  # OB values are padded to an even length
