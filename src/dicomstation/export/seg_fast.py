"""Our own Segmentation subclass: the spatial metadata of a SEG over its source slices, made once.

``highdicom.seg.Segmentation`` copies the plane positions of single-frame source images
through ``highdicom.utils.get_plane_positions_of_series``, which first asks
``is_multiframe_image`` of every source. That answer depends only on the SOP Class UID,
but each call walks every module attribute of the IOD (``is_attribute_in_iod``, ~1.5 ms
for CT): a third of the CPU of a 64-slice SEG. :class:`FastSegmentation` overrides the
one method that does this, ``_prepare_spatial_metadata``, for the plain case only
(single-frame sources in a patient frame of reference, one per plane, on the sources'
grid, nothing given for positions, orientation or measures, no further sources) and
builds what highdicom's own branch for that case builds, with the same highdicom
helpers, asking ``is_multiframe_image`` once per SOP class. Every other case goes to
highdicom unchanged.

It relies on highdicom internals (``_prepare_spatial_metadata``, ``_coordinate_system``,
``_get_pixel_measures_sequence``, ``_get_derivation_source_image_item``,
``highdicom.spatial._get_slice_distances``), so it is used only on the highdicom version
it was checked against (:data:`CHECKED_VERSION`; pyproject pins ``highdicom<0.29``):
on any other version :data:`AVAILABLE` is False and plain ``hd.seg.Segmentation`` is
used. Nothing of highdicom is changed: only instances of this class behave differently.
The upstream proposal is docs/upstream/highdicom.md; tests/export/test_seg_fast.py
checks that both classes make the same dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

__all__ = ["AVAILABLE", "CHECKED_VERSION", "FastSegmentation", "segmentation_class"]

#: The highdicom version whose ``_prepare_spatial_metadata`` this mirrors.
CHECKED_VERSION = "0.28.2"
AVAILABLE = hd.__version__ == CHECKED_VERSION

_PATIENT = hd.CoordinateSystemNames.PATIENT


def _multiframe(images: Sequence[Dataset]) -> bool:
    """``is_multiframe_image`` of any image, asked once per SOP class (it reads only that)."""
    from highdicom._standard_utils import is_multiframe_image

    firsts = {str(ds.SOPClassUID): ds for ds in images}
    return any(is_multiframe_image(ds) for ds in firsts.values())


class FastSegmentation(hd.seg.Segmentation):
    """``hd.seg.Segmentation`` with the plain case of its spatial metadata made in one pass."""

    def _prepare_spatial_metadata(
        self,
        plane_positions: Sequence[Any] | None,
        plane_orientation: Any,
        pixel_measures: Any,
        source_images: Sequence[Dataset],
        further_source_images: Sequence[Dataset],
        tile_pixel_array: bool,
        tile_size: Sequence[int] | None,
        frame_shape: tuple[int, int],
        number_of_planes: int,
        dimension_organization_type: Any,
        volume_geometry: Any,
    ) -> tuple[Any, ...]:
        plain = (
            self._coordinate_system == _PATIENT
            and plane_positions is None
            and plane_orientation is None
            and pixel_measures is None
            and not further_source_images
            and not tile_pixel_array
            and volume_geometry is None
            and len(source_images) == number_of_planes
            and tuple(frame_shape) == (source_images[0].Rows, source_images[0].Columns)
            and all("ImagePositionPatient" in ds for ds in source_images)
            and not _multiframe(source_images)
        )
        if not plain:
            return super()._prepare_spatial_metadata(
                plane_positions,
                plane_orientation,
                pixel_measures,
                source_images,
                further_source_images,
                tile_pixel_array,
                tile_size,
                frame_shape,
                number_of_planes,
                dimension_organization_type,
                volume_geometry,
            )
        return self._plain_spatial_metadata(source_images)

    def _plain_spatial_metadata(self, source_images: Sequence[Dataset]) -> tuple[Any, ...]:
        """highdicom 0.28.2's branch for copied positions of single-frame patient images."""
        from highdicom.spatial import (
            VOLUME_INDEX_CONVENTION,
            _get_slice_distances,
            get_normal_vector,
        )

        first = source_images[0]
        measures = self._get_pixel_measures_sequence(
            source_image=first, is_multiframe=False, coordinate_system=self._coordinate_system
        )
        iop = first.ImageOrientationPatient
        if any(ds.ImageOrientationPatient != iop for ds in source_images):
            raise ValueError("Source images must have a shared orientation.")
        orientation = hd.PlaneOrientationSequence(coordinate_system=_PATIENT, image_orientation=iop)
        positions = [
            hd.PlanePositionSequence(
                coordinate_system=_PATIENT, image_position=ds.ImagePositionPatient
            )
            for ds in source_images
        ]
        items = [
            [
                self._get_derivation_source_image_item(
                    source_image=ds, frame_number=None, locations_preserved=True
                )
            ]
            for ds in source_images
        ]
        values = np.array([p[0].ImagePositionPatient for p in positions])
        normal = get_normal_vector(
            orientation[0].ImageOrientationPatient, index_convention=VOLUME_INDEX_CONVENTION
        )
        _, sort_index = np.unique(_get_slice_distances(values, normal), return_index=True)
        if len(sort_index) != len(positions):
            raise ValueError("Plane positions must not contain duplicates.")
        return positions, orientation, measures, values, np.empty((0,)), sort_index, items


def segmentation_class() -> type[hd.seg.Segmentation]:
    """:class:`FastSegmentation` on the checked highdicom version, else highdicom's own."""
    return FastSegmentation if AVAILABLE else hd.seg.Segmentation
