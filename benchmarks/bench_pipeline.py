"""Benchmark: a cohort pipeline, fetch -> segment -> export SEG + SR -> send, on real Orthancs.

A cohort of synthetic CT studies (``--studies``, 64 slices each by default) is
stored in a source Orthanc; each run sends one SEG and one SR per study to an
empty destination Orthanc, and the destination is checked (exactly one SEG and
one SR per study) before a run counts. Compared in one process, one after the other:

- ``in-process``: ``Pipeline.run`` with the default in-process executor: one process,
  ``run.concurrency`` items at once on threads (2 by default; the GIL lets the
  CPU-bound steps of both run only one at a time, their network waits overlap);
- ``dask-2``: the same pipeline on a ``distributed.LocalCluster`` of 2 worker
  processes (``DaskExecutor("local:2")``), started and warmed (2 studies through the
  pipeline, as the in-process run gets 1) before the clock;
- ``naive``: the script users write today: dicomweb-client + highdicom in a loop
  (retrieve the study, stack the slices, threshold, build SEG and SR, STOW both).

Worker memory flatness: fresh 2-worker clusters run the first ``--studies`` and
then ``--flat`` studies; the peak RSS of each worker process is printed for both.

CPU: each run prints the CPU seconds per study of this process (the driver; with
Dask also the scheduler and nannies of the LocalCluster), of the Dask worker
processes, and of the two Orthancs. The machine has ``os.cpu_count()`` cores: a
run cannot go faster than cores / (CPU s per study), which is printed as the
ceiling the Dask ratio is measured against.

Run:  .venv/bin/python benchmarks/bench_pipeline.py [--studies 40] [--flat 80] [--size 128]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline_meter import Cpu, CpuMeter, peak_rss_mib, rss_mib  # noqa: E402
from tests.peers import OrthancServer, start_orthanc  # noqa: E402
from tests.synth import ct_dataset  # noqa: E402

THRESHOLD = (0.0, 3000.0)  # HU: the synthetic phantom's disk
METER: CpuMeter | None = None  # set by main(); each timed run reads it around its clock


def _metered(run: Callable[[], float]) -> tuple[float, Cpu]:
    """(seconds, CPU seconds by group) of ``run``."""
    assert METER is not None
    return METER.measure(run)


def _warm() -> int:
    """Import what a task imports and read the standard's tables (worker start-up, not timed).

    The in-process run gets the same by its untimed warm-up study; a Dask warm-up study
    may land on either worker, so each worker reads them here.
    """
    import highdicom  # noqa: F401

    import dicomstation.pipeline.builtin_exports
    import dicomstation.pipeline.steps  # noqa: F401
    from dicomstation.export.iod import iod_attributes

    iod_attributes("1.2.840.10008.5.1.4.1.1.2")  # CT Image: loads the IOD tables once
    return os.getpid()


# -- the cohort ----------------------------------------------------------------------------
def make_cohort(source: OrthancServer, count: int, slices: int, size: int) -> list[str]:
    """Store ``count`` studies of one CT series each in ``source``; return the study UIDs."""
    uids = [f"1.2.826.0.1.3680043.8.498.9{n + 1:04d}" for n in range(count)]

    def upload(uid: str) -> None:
        with source.rest() as rest:
            for k in range(slices):
                ds = ct_dataset(
                    k,
                    study_uid=uid,
                    series_uid=uid + ".1",
                    size=size,
                    patient_id=f"BENCH{uid[-4:]}",
                )
                buffer = io.BytesIO()
                ds.save_as(buffer, enforce_file_format=True)
                _post(rest, buffer.getvalue())

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(upload, uids))
    return uids


def _post(rest: Any, data: bytes) -> None:
    """POST one instance; once more if Orthanc closed the kept-alive connection meanwhile."""
    import httpx

    try:
        rest.post("/instances", content=data).raise_for_status()
    except httpx.TransportError:
        rest.post("/instances", content=data).raise_for_status()


def check_destination(dest: OrthancServer, uids: list[str]) -> None:
    """Exactly one SEG and one SR instance per study, nothing else, or SystemExit."""
    found: dict[str, dict[str, int]] = {}
    with dest.rest() as rest:
        for series_id in rest.get("/series").json():
            series = rest.get(f"/series/{series_id}").json()
            study = rest.get(f"/studies/{series['ParentStudy']}").json()
            counts = found.setdefault(study["MainDicomTags"]["StudyInstanceUID"], {})
            modality = series["MainDicomTags"].get("Modality", "")
            counts[modality] = counts.get(modality, 0) + len(series["Instances"])
    bad = {u: found.get(u) for u in uids if found.get(u) != {"SEG": 1, "SR": 1}}
    if bad or set(found) != set(uids):
        raise SystemExit(f"destination check failed: {len(bad)} studies wrong, e.g. {bad}")


# -- dicomstation --------------------------------------------------------------------------
def servers(source: OrthancServer, dest: OrthancServer) -> dict[str, Any]:
    from dicomstation.config import Credentials, DicomWebServer, Secret

    def one(server: OrthancServer, name: str) -> DicomWebServer:
        creds = Credentials(username=server.user, password=Secret(server.password))
        return DicomWebServer(name=name, url=server.dicomweb_url, credentials=creds)

    return {"src": one(source, "src"), "dest": one(dest, "dest")}


def pipeline(name: str, uids: list[str]) -> Any:
    from dicomstation.pipeline import Pipeline

    return Pipeline.from_dict(
        {
            "name": name,
            "source": {"kind": "items", "items": uids},
            "steps": [
                {"kind": "fetch", "name": "fetch", "server": "src"},
                {"kind": "load", "name": "load"},
                {
                    "kind": "segment",
                    "name": "segment",
                    "segmenter": "threshold",
                    "params": {"threshold": list(THRESHOLD)},
                },
                {"kind": "export", "name": "export", "kinds": ["seg", "sr"]},
                {"kind": "send", "name": "send", "server": "dest"},
            ],
            "run": {"workspace": "temporary"},
        }
    )


def run_ours(
    name: str, uids: list[str], work: Path, configs: dict[str, Any], executor: Any = None
) -> float:
    from dicomstation.pipeline import RunOptions

    options = RunOptions(work / name, configs, executor=executor)
    started = time.perf_counter()
    report = pipeline(name, uids).run(options)
    seconds = time.perf_counter() - started
    if not report.ok or report.done != len(uids):
        raise SystemExit(f"{name}: {report.done} done, failed: {dict(report.failed)}")
    return seconds


def run_dask(
    name: str, uids: list[str], work: Path, configs: dict[str, Any]
) -> tuple[float, tuple[float, Cpu], list[float]]:
    """(start-up s, (run s, CPU), peak RSS MiB per worker) on a fresh 2-worker LocalCluster."""
    from dicomstation.pipeline.dask_executor import DaskExecutor

    started = time.perf_counter()
    with DaskExecutor("local:2", dashboard=False) as executor:
        client = executor.start()
        client.run(_warm)
        run_ours(f"{name}-warm-up", uids[:2], work, configs, executor)  # as in-process: not timed
        startup = time.perf_counter() - started
        measured = _metered(lambda: run_ours(name, uids, work, configs, executor))
        peaks = sorted(client.run(peak_rss_mib).values())
        now = sorted(client.run(rss_mib).values())
        print(f"  (worker RSS after the run: {', '.join(f'{m:.0f}' for m in now)} MiB)")
    return startup, measured, peaks


# -- the script users write today -----------------------------------------------------------
def naive(uids: list[str], source: OrthancServer, dest: OrthancServer) -> float:
    """dicomweb-client + highdicom in a loop, one study after the other."""
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_auth
    from requests.auth import HTTPBasicAuth

    auth = HTTPBasicAuth(source.user, source.password)
    src = DICOMwebClient(source.dicomweb_url, session=create_session_from_auth(auth))
    dst = DICOMwebClient(dest.dicomweb_url, session=create_session_from_auth(auth))
    started = time.perf_counter()
    for uid in uids:
        images = sorted(src.retrieve_study(uid), key=lambda d: float(d.ImagePositionPatient[2]))
        hu = np.stack(
            [d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in images]
        )
        mask = (hu >= THRESHOLD[0]) & (hu <= THRESHOLD[1])
        seg = _naive_seg(images, mask)
        dst.store_instances([seg, _naive_sr(images, seg, hu, mask)])
    return time.perf_counter() - started


def _naive_seg(images: list[Any], mask: np.ndarray) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Segment",
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="threshold", version="1", family=codes.DCM.ArtificialIntelligence
        ),
    )
    return hd.seg.Segmentation(
        source_images=images,
        pixel_array=mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=generate_uid(),
        series_number=200,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="bench",
        manufacturer_model_name="script",
        software_versions="1",
        device_serial_number="1",
    )


def _naive_sr(images: list[Any], seg: Any, hu: np.ndarray, mask: np.ndarray) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    spacing = [float(v) for v in images[0].PixelSpacing] + [float(images[0].SliceThickness)]
    group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="Segment"),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=1,
            source_series=hd.sr.SourceSeriesForSegmentation(images[0].SeriesInstanceUID),
        ),
        measurements=[
            hd.sr.Measurement(
                name=codes.SCT.Volume,
                unit=codes.UCUM.CubicMillimeter,
                value=float(mask.sum() * np.prod(spacing)),
            ),
            hd.sr.Measurement(
                name=codes.SCT.Mean, unit=codes.UCUM.HounsfieldUnit, value=float(hu[mask].mean())
            ),
        ],
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name="Bench^Script"
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[group],
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[seg],
        content=report,
        series_instance_uid=generate_uid(),
        series_number=300,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="bench",
    )


# -- main -----------------------------------------------------------------------------------
def timed(
    label: str, run: Callable[[], tuple[float, Cpu]], dest: OrthancServer, uids: list[str]
) -> tuple[float, Cpu]:
    """Run, check the destination, print rate and CPU s per study; (seconds, CPU per study)."""
    dest.clear()
    seconds, cpu = run()
    check_destination(dest, uids)
    per = {k: v / len(uids) for k, v in cpu.items()}
    print(
        f"  {label:<12} {len(uids)} studies in {seconds:7.1f} s = "
        f"{len(uids) / seconds * 60:6.1f} studies/min; CPU s/study: driver {per['driver']:.3f}, "
        f"workers {per['workers']:.3f}, Orthancs {per['orthanc']:.3f} "
        f"(Orthanc {cpu['orthanc'] / seconds:.2f} cores busy)",
        flush=True,
    )
    return seconds, per


def ceiling(per: Cpu) -> float:
    """Studies/min if every core did nothing but this run's work (CPU s per study)."""
    return (os.cpu_count() or 1) * 60 / max(1e-9, sum(per.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=40)
    parser.add_argument("--flat", type=int, default=80, help="cohort size for the memory check")
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=128, help="rows = columns")
    args = parser.parse_args()
    with orthanc_pair("bench-pipeline-") as (work, source, dest):
        global METER
        METER = CpuMeter(source, dest)
        bench(args, work, source, dest)


@contextlib.contextmanager
def orthanc_pair(prefix: str) -> Iterator[tuple[Path, OrthancServer, OrthancServer]]:
    """A scratch folder and two real Orthancs in it (source, destination), stopped after."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        (work / "src").mkdir()
        (work / "dst").mkdir()
        source, dest = start_orthanc(work / "src"), start_orthanc(work / "dst")
        try:
            yield work, source, dest
        finally:
            source.stop()
            dest.stop()


def bench(args: argparse.Namespace, work: Path, source: OrthancServer, dest: OrthancServer) -> None:
    print(
        f"cohort: {max(args.studies, args.flat)} CT studies of {args.slices} slices "
        f"{args.size}x{args.size}; cpu count {os.cpu_count()}, load average "
        f"{os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    every = make_cohort(source, max(args.studies, args.flat), args.slices, args.size)
    uids = every[: args.studies]
    configs = servers(source, dest)
    run_ours("warm-up", uids[:1], work, configs)  # imports, not timed
    dest.clear()
    threads = pipeline("inproc", uids).settings.concurrency
    print(f"  in-process: the default executor, {threads} threads in one process", flush=True)
    inproc, inproc_cpu = timed(
        "in-process", lambda: _metered(lambda: run_ours("inproc", uids, work, configs)), dest, uids
    )
    memory: dict[int, list[float]] = {}
    startup = 0.0

    def dask_run(name: str, cohort: list[str]) -> tuple[float, Cpu]:
        nonlocal startup
        startup, measured, memory[len(cohort)] = run_dask(name, cohort, work, configs)
        return measured

    dask, dask_cpu = timed("dask-2", lambda: dask_run("dask40", uids), dest, uids)
    script, _ = timed("naive", lambda: _metered(lambda: naive(uids, source, dest)), dest, uids)
    flat = every[: args.flat]
    timed("dask-2", lambda: dask_run("dask-flat", flat), dest, flat)
    print(f"  (cluster start-up + warm-up of the last cluster, not timed: {startup:.1f} s)")
    report(args, threads, (inproc, inproc_cpu), (dask, dask_cpu), script, memory)


def report(
    args: argparse.Namespace,
    threads: int,
    inproc: tuple[float, Cpu],
    dask: tuple[float, Cpu],
    script: float,
    memory: dict[int, list[float]],
) -> None:
    """Print the goal ratios, the CPU ceiling of the Dask ratio, and worker memory."""
    n = args.studies
    print("ratios (higher is faster):")
    print(
        f"  dask-2 / in-process = {inproc[0] / dask[0]:5.2f}x   (goal >= 1.7x; {threads} threads)"
    )
    print(f"  dask-2 / naive      = {script / dask[0]:5.2f}x   (goal >= 3x)")
    print(f"  in-process / naive  = {script / inproc[0]:5.2f}x")
    top = ceiling(dask[1])
    print(f"CPU ceiling on {os.cpu_count()} cores (all of them doing only this run's work):")
    print(
        f"  dask-2 at most {top:.1f} studies/min ({sum(dask[1].values()):.3f} CPU s/study, "
        f"Orthancs {dask[1]['orthanc'] / sum(dask[1].values()):.0%} of it): "
        f"dask-2 / in-process <= {top / (n / inproc[0] * 60):.2f}x; "
        f"reached {n / dask[0] * 60 / top:.0%} of the ceiling"
    )
    busy = inproc[1]["driver"] * n / inproc[0]
    one_core = 60 / max(1e-9, inproc[1]["driver"])
    print(
        f"  in-process kept {busy:.2f} cores busy (its threads share one GIL: at most "
        f"{one_core:.1f} studies/min on one core); ceilings' ratio {top / one_core:.2f}x"
    )
    small, large = memory[n], memory[args.flat]
    print("peak RSS per worker (MiB):")
    print(f"  {n} studies: {', '.join(f'{m:.0f}' for m in small)}")
    print(f"  {args.flat} studies: {', '.join(f'{m:.0f}' for m in large)}")
    print(f"  ratio {args.flat}/{n} (max worker) = {max(large) / max(small):.2f} (flat: ~1.0)")
    print(f"load average at end: {os.getloadavg()[0]:.1f} (2 cores shared with other work)")


if __name__ == "__main__":
    main()
