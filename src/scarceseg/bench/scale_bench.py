"""`scarceseg bench scale`: cohort throughput with 1 and 2 workers, local process pool against Ray.

One cheap model (an ACWE ConvNet trained for one epoch on a few slices) segments N LGG slices (2D, one task per
slice) and M BRATS volumes (3D, one task per volume) with every backend and worker count, each run into a fresh
folder with ``resume=False``; the masks of every run are compared byte for byte. Ray's start-up (``ray.init``
of a local cluster) and its per-task overhead (no-op tasks) are measured in the same process, so the
pool/Ray ratios come from one run on one machine state.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from scarceseg.bench.cohort import SegmentJob, Sources, read_folder, segment_task
from scarceseg.bench.runner import CaseResult, CohortItem, default_workers, ray_connect, run_cohort


def measured_segment_task(job: SegmentJob, item: CohortItem) -> CaseResult:
    """:func:`segment_task` plus the worker's process id and peak resident memory (MiB) in the record."""
    result = segment_task(job, item)
    result.record.update(pid=os.getpid(), rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def noop_task(shared: object, item: CohortItem) -> CaseResult:
    """Nothing to compute: what is left of a task's time is the runner's overhead."""
    return CaseResult(record={"pid": os.getpid()})


def _train_model(data: Path, ids: Sequence[str], out: Path, seed: int) -> float:
    from scarceseg.methods.acwe_config import ACWEConfig
    from scarceseg.methods.acwe_data import train_acwe_from_dataset

    t0 = time.perf_counter()
    cfg = replace(ACWEConfig.cpu(), epochs=1)
    train_acwe_from_dataset(data, out, mode=1, config=cfg, case_ids=list(ids), seed=seed, progress=False)
    return time.perf_counter() - t0


def _spread(ids: Sequence[str], n: int) -> list[str]:
    """``n`` ids spread evenly over the list (all when n >= len)."""
    if n >= len(ids):
        return list(ids)
    step = len(ids) / n
    return [ids[int(k * step)] for k in range(n)]


def _digest(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def run_scale_bench(
    data: str | Path,
    out: str | Path,
    volumes: str | Path | None = None,
    n_slices: int = 200,
    n_volumes: int = 4,
    workers: Sequence[int] = (1, 2),
    ray: str | None = "auto",
    n_noop: int = 200,
    seed: int = 0,
    echo: Callable[[str], None] = print,
    progress: bool = False,
    command: str = "",
) -> dict:
    """Measure cases/s per backend and worker count; write ``scale.csv``, ``scale.json``, ``scale.png``,
    ``report.md`` into ``out``.

    Parameters
    ----------
    data : folder of 2D slices (LGG layout); the model is trained on 10 of them, one epoch
    out : output folder (its ``runs/`` are rewritten)
    volumes : folder of 3D volumes (BraTS layout), optional
    n_slices, n_volumes : cohort sizes
    workers : worker counts to measure (the pool's 1 runs in this process)
    ray : ``"auto"``, an address, or None to measure the local pool only
    n_noop : no-op tasks for the per-task overhead
    seed : training seed
    """
    import torch

    from scarceseg.datasets import open_dataset

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # one core per worker everywhere: the in-process run too
    ds2 = open_dataset(data)
    slice_ids = _spread(ds2.case_ids, n_slices)
    t_train = _train_model(Path(data), _spread(slice_ids, 10), out / "model", seed)
    job_files = read_folder(out / "model")
    workloads = [("slices", ds2.subset(slice_ids))]
    if volumes is not None:
        ds3 = open_dataset(volumes)
        workloads.append(("volumes", ds3.subset(ds3.case_ids[:n_volumes])))
    backends = ["local"]
    facts: dict = {"ray_version": None, "ray_startup_seconds": None, "model_bytes": sum(map(len, job_files.values()))}
    if ray is not None:
        try:
            import ray as ray_module

            facts["ray_version"] = ray_module.__version__
            facts["ray_startup_seconds"] = round(ray_connect(ray, {"num_cpus": max(workers)}), 2)
            facts["ray_cluster_cpus"] = ray_module.cluster_resources().get("CPU")
            backends.append("ray")
        except ImportError:
            echo("ray is not installed (pip install 'scarceseg[ray]'): measuring the local pool only")
    rows: list[dict] = []
    reference: dict[str, dict[str, bytes]] = {}
    for name, ds in workloads:
        items = [CohortItem(cid, ("dataset", 0, cid)) for cid in ds.case_ids]
        job = SegmentJob(job_files, Sources([ds]))
        for backend in backends:
            for w in workers:
                folder = out / "runs" / f"{name}_{backend}_{w}"
                report = run_cohort(measured_segment_task, items, folder, shared=job, workers=w,
                                    ray=ray if backend == "ray" else None, resume=False, progress=progress,
                                    description=f"{name} {backend} x{w}")
                files = _digest(folder)
                same = reference.setdefault(name, files) == files
                n = len(report.done)
                gap = report.steady_seconds_per_case()
                rss = [r.get("rss_mib", 0.0) for r in report.records.values()]
                row = {"workload": name, "cases": n, "backend": report.backend if backend == "local" else "ray",
                       "workers": w, "seconds": round(report.seconds, 3),
                       "cases_per_s": round(n / report.seconds, 3) if report.seconds else 0.0,
                       "first_result_s": round(report.first_result_seconds, 3),
                       "steady_cases_per_s": round(1 / gap, 3) if gap else None,
                       "processes": len({r.get("pid") for r in report.records.values()}),
                       "peak_worker_rss_mib": round(max(rss), 1) if rss else None,
                       "failed": len(report.failed) + len(report.skipped), "same_masks_as_first": same}
                rows.append(row)
                echo(f"{name:8s} {row['backend']:6s} x{w}: {n} cases in {row['seconds']:.1f} s = "
                     f"{row['cases_per_s']:.2f} cases/s (first result {row['first_result_s']:.1f} s, steady "
                     f"{row['steady_cases_per_s']} cases/s), identical masks: {same}")
    overhead: list[dict] = []
    items = [CohortItem(f"noop{k:04d}") for k in range(n_noop)]
    for backend in backends:
        w = max(workers)
        report = run_cohort(noop_task, items, out / "runs" / f"noop_{backend}", workers=w,
                            ray=ray if backend == "ray" else None, resume=False, progress=False)
        gap = report.steady_seconds_per_case()
        per_task = 1000 * gap if gap is not None else float("nan")
        overhead.append({"backend": report.backend if backend == "local" else "ray", "workers": w,
                         "tasks": n_noop, "seconds": round(report.seconds, 3),
                         "first_result_s": round(report.first_result_seconds, 3),
                         "steady_ms_between_results": round(per_task, 3)})
        echo(f"no-op tasks {overhead[-1]['backend']} x{w}: {n_noop} in {report.seconds:.2f} s, first result "
             f"{report.first_result_seconds:.2f} s, then one result every {per_task:.2f} ms")
    if "ray" in backends:
        import ray as ray_module

        ray_module.shutdown()
    ratios = _ratios(rows)
    summary = {"command": command, "rows": rows, "noop": overhead, "ratios_pool_over_ray": ratios,
               "train_seconds": round(t_train, 2), "seed": seed, "machine": machine(), **facts,
               "note": "one run on a shared, noisy machine: compare rows of this run only"}
    _write(out, summary)
    echo(f"wrote {out / 'report.md'}")
    return summary


def _ratios(rows: list[dict]) -> dict:
    by = {(r["workload"], r["backend"], r["workers"]): r for r in rows}
    ratios = {}
    for (name, backend, w), row in by.items():
        if backend == "ray":
            continue
        other = by.get((name, "ray", w))
        if other and other["cases_per_s"]:
            ratios[f"{name} x{w}"] = round(row["cases_per_s"] / other["cases_per_s"], 3)
    return ratios


def machine() -> dict:
    """Where the figures were measured."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"hostname": platform.node(), "cpu": cpu, "cores_usable": default_workers(),
            "platform": platform.platform(), "python": platform.python_version()}


def _write(out: Path, summary: dict) -> None:
    rows = summary["rows"]
    (out / "scale.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with open(out / "scale.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, out / "scale.png")
    lines = ["# Cohort throughput: local process pool and Ray, one run", "",
             f"Command: `{summary['command']}`", "",
             f"Machine: {summary['machine']['cpu']}, {summary['machine']['cores_usable']} usable cores "
             "(shared with other jobs: the figures are noisy; compare rows of this run only).", "",
             "| workload | cases | backend | workers | seconds | cases/s | first result s | steady cases/s | "
             "processes | peak worker RSS MiB | identical masks |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['cases']} | {r['backend']} | {r['workers']} | {r['seconds']} | "
                     f"{r['cases_per_s']} | {r['first_result_s']} | {r['steady_cases_per_s']} | {r['processes']} | "
                     f"{r['peak_worker_rss_mib']} | {r['same_masks_as_first']} |")
    lines += ["", "Per-task overhead (no-op tasks):", "",
              "| backend | workers | tasks | seconds | first result s | steady ms between results |",
              "|---|---|---|---|---|---|"]
    for r in summary["noop"]:
        lines.append(f"| {r['backend']} | {r['workers']} | {r['tasks']} | {r['seconds']} | {r['first_result_s']} | "
                     f"{r['steady_ms_between_results']} |")
    lines += ["", f"Ray start-up (`ray.init` of a local cluster): {summary['ray_startup_seconds']} s; "
              f"Ray {summary['ray_version']}.",
              f"Pool / Ray throughput ratio, same run: {summary['ratios_pool_over_ray']}.",
              f"Model: ACWE ConvNet (mode 1, one epoch, {summary['model_bytes']} bytes of files), trained in "
              f"{summary['train_seconds']} s (not counted). Workers: 1 = in this process; the pool forks its workers "
              "from a forkserver that imported torch (one torch thread each; its RSS counts pages shared with "
              "the server); Ray's workers stay up between runs of one job. Steady = median time between results "
              "over the second half of a run.", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")


def _plot(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    workloads = sorted({r["workload"] for r in rows}, key=[r["workload"] for r in rows].index)
    fig = Figure(figsize=(3.2 * len(workloads) + 1, 3.2))
    FigureCanvasAgg(fig)
    for k, name in enumerate(workloads):
        ax = fig.add_subplot(1, len(workloads), k + 1)
        sel = [r for r in rows if r["workload"] == name]
        labels = [f"{r['backend']}\nx{r['workers']}" for r in sel]
        colours = ["#4c72b0" if r["backend"] != "ray" else "#dd8452" for r in sel]
        ax.bar(range(len(sel)), [r["cases_per_s"] for r in sel], color=colours)
        ax.set_xticks(range(len(sel)), labels, fontsize=8)
        ax.set_title(f"{name} ({sel[0]['cases']} cases)", fontsize=9)
        ax.set_ylabel("cases/s (start-up included)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
