"""A processed scalar volume as a Parametric Map (highdicom), for any source series.

The classic derived series (:mod:`dicomstation.export.derived`) needs
single-frame sources; a Parametric Map is one enhanced multi-frame object
with float pixels, a real-world value mapping (unit) and frames placed from
the volume's geometry, so it also serves enhanced multi-frame sources and
values that do not fit 16-bit integers.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicomstation.errors import ExportError
from dicomstation.export.common import (
    ExportOptions,
    SourceSeries,
    apply_options,
    new_uid,
    require_frame_of_reference,
)
from dicomstation.export.iod import inherit_body_part
from dicomstation.export.sr import intensity_unit

__all__ = ["build_parametric_map"]


def build_parametric_map(
    source: SourceSeries,
    volume: hd.Volume,
    options: ExportOptions | None = None,
    *,
    derivation: Code = codes.DCM.ImageProcessing,
    description: str = "Processed",
    unit: Code | None = None,
) -> hd.pm.ParametricMap:
    """Build a Parametric Map of a processed ``volume`` of ``source``.

    Parameters
    ----------
    source : SourceSeries
        The series the volume was computed from (single- or multi-frame).
    volume : highdicom.Volume
        Scalar volume in the source's frame of reference (any grid).
    derivation : pydicom.sr.coding.Code
        Derivation code (CID 7203).
    description : str
        What was done (the real-world value mapping's explanation).
    unit : pydicom.sr.coding.Code, optional
        UCUM unit of the values; HU for CT sources, no units otherwise.
    """
    options = options or ExportOptions()
    source.check_geometry(volume, "parametric map")
    if volume.number_of_channel_dimensions != 0 or volume.array.ndim != 3:
        raise ExportError(f"a parametric map needs a scalar 3D volume, got {volume.array.shape}")
    require_frame_of_reference(source, "a parametric map")
    values = np.asarray(volume.array, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=description[:16] or "VALUE",
        lut_explanation=description[:64],
        unit=unit or intensity_unit(source.modality),
        value_range=(low, high),
        slope=1.0,
        intercept=0.0,
    )
    try:
        pm = hd.pm.ParametricMap(
            source_images=list(source.datasets),
            pixel_array=volume.with_array(values),
            series_instance_uid=new_uid(),
            series_number=options.number(source.first, 150),
            sop_instance_uid=new_uid(),
            instance_number=1,
            manufacturer=options.manufacturer,
            manufacturer_model_name=options.manufacturer_model_name,
            software_versions=options.software_versions,
            device_serial_number=options.device_serial_number,
            contains_recognizable_visual_features=False,
            real_world_value_mappings=[mapping],
            window_center=(low + high) / 2,
            window_width=max(high - low, 1.0),  # below 1 only with LINEAR_EXACT
            content_label="PROCESSED",
            content_description=description[:64],
            derivation=derivation,
            series_description=options.description(description),
        )
    except (ValueError, TypeError, AttributeError, RuntimeError) as exc:
        raise ExportError(f"cannot build parametric map for {source.series_uid}: {exc}") from exc
    inherit_body_part(pm, source.first)
    apply_options(pm, options)
    return pm
