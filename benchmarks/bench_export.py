"""Benchmark: DICOM SEG export of a 300-slice 512x512 CT segmentation with 5 segments.

Compares dicomstation's two SEG builders -- ``build_seg_from_labelmap`` (one
label map) and ``build_seg`` (one boolean mask per segment, checked for
overlap and combined) -- with highdicom used directly (numpy label map in
source order). Each run is a fresh subprocess that builds the inputs, then
times building the SEG and writing it to disk, and reports its peak RSS.

Run:  .venv/bin/python benchmarks/bench_export.py [--repeats 3] [--slices 300]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("highdicom", "dicomstation-labelmap", "dicomstation-masks")


def _sources(slices: int, size: int) -> list[object]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    out = []
    for k in range(slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "BENCH^CT", "B1", "", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", ""
        ds.ReferringPhysicianName, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = (
            "",
            "CT",
            1,
            k + 1,
        )
        ds.Rows = ds.Columns = size
        ds.PixelSpacing = [0.7, 0.7]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.ImagePositionPatient = [-179.0, -179.0, -300.0 + 1.0 * k]
        ds.SliceThickness = 1.0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        out.append(ds)
    return out


def _labels(slices: int, size: int) -> np.ndarray:
    """Five non-overlapping ellipsoids of different sizes (label 1..5)."""
    y, x = np.ogrid[:size, :size]
    labels = np.zeros((slices, size, size), dtype=np.uint8)
    centres = [
        (0.3, 0.3, 0.3),
        (0.5, 0.7, 0.3),
        (0.7, 0.3, 0.7),
        (0.5, 0.5, 0.55),
        (0.2, 0.75, 0.75),
    ]
    for k in range(slices):  # slice by slice: the inputs stay small next to the export
        plane = labels[k]
        for n, (cz, cy, cx) in enumerate(centres, start=1):
            radius = size * (0.06 + 0.02 * n) * 0.7
            dz2 = (k - cz * slices) ** 2
            inside = dz2 + ((y - cy * size) * 0.7) ** 2 + ((x - cx * size) * 0.7) ** 2 <= radius**2
            plane[inside & (plane == 0)] = n
    return labels


def _child(kind: str, slices: int, size: int, out: Path) -> dict[str, float]:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = _sources(slices, size)
    labels = _labels(slices, size)
    if kind.startswith("dicomstation"):
        from dicomstation.export import (
            Segment,
            SegmentInfo,
            SourceSeries,
            build_seg,
            build_seg_from_labelmap,
        )

        grid = hd.Volume.from_attributes(
            array=labels,
            image_position=sources[0].ImagePositionPatient,
            image_orientation=sources[0].ImageOrientationPatient,
            pixel_spacing=[0.7, 0.7],
            spacing_between_slices=1.0,
            coordinate_system="PATIENT",
            frame_of_reference_uid=sources[0].FrameOfReferenceUID,
        )
        source = SourceSeries(tuple(sources), grid)
        if kind == "dicomstation-masks":
            # the inputs of build_seg: one boolean mask per segment
            segments = [Segment(f"Segment {n}", grid.with_array(labels == n)) for n in range(1, 6)]
            baseline_mb = _rss_mb()
            start = time.perf_counter()
            seg = build_seg(source, segments)
        else:
            infos = [SegmentInfo(f"Segment {n}") for n in range(1, 6)]
            baseline_mb = _rss_mb()
            start = time.perf_counter()
            seg = build_seg_from_labelmap(source, grid, infos)
    else:
        baseline_mb = _rss_mb()
        start = time.perf_counter()
        descriptions = [
            hd.seg.SegmentDescription(
                segment_number=n,
                segment_label=f"Segment {n}",
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=codes.SCT.Tissue,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            )
            for n in range(1, 6)
        ]
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=labels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=300,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="bench",
            manufacturer_model_name="bench",
            software_versions="1",
            device_serial_number="1",
        )
    seg.save_as(out)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_mb,
        "inputs_mb": baseline_mb,
        "frames": float(seg.NumberOfFrames),
        "bytes": float(out.stat().st_size),
    }


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def _run(kind: str, slices: int, size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "seg.dcm"
        run = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                kind,
                "--slices",
                str(slices),
                "--size",
                str(size),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    result: dict[str, float] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--child", choices=KINDS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.slices, args.size, args.out)))
        return
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    for _ in range(args.repeats):  # interleaved, so background load hits every kind alike
        for kind in KINDS:
            runs[kind].append(_run(kind, args.slices, args.size))
    rows = {
        kind: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for kind, results in runs.items()
    }
    base = rows["highdicom"]
    print(
        f"SEG export, {args.slices} x {args.size} x {args.size}, 5 segments, "
        f"median of {args.repeats} (each run in a fresh process)"
    )
    print(
        f"{'':22}{'seconds':>9}{'peak RSS MB':>13}{'of which inputs':>17}{'frames':>8}"
        f"{'MB on disk':>12}{'time ratio':>12}{'RSS ratio':>11}"
    )
    for kind, row in rows.items():
        print(
            f"{kind:22}{row['seconds']:9.2f}{row['peak_rss_mb']:13.0f}{row['inputs_mb']:17.0f}"
            f"{row['frames']:8.0f}{row['bytes'] / 1e6:12.1f}"
            f"{row['seconds'] / base['seconds']:12.2f}"
            f"{row['peak_rss_mb'] / base['peak_rss_mb']:11.2f}"
        )


if __name__ == "__main__":
    main()
