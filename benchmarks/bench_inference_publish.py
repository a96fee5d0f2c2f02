"""Peak memory and S3 calls of publishing a split inference batch, streamed vs held in memory.

A batch of 10k, 100k or 400k images is split as the closer splits it (``BatchMaxImages`` 5000:
parts of at most 5,000 images); every part but the last has completed. Measured: the job-state
function's work on the last part's Completed event, against a moto server (S3, DynamoDB, SNS
in a process of their own, so the figures are the function's alone):

* **streamed** — spotline's ``RunPublisher.finish`` (the run settles, the batch is published:
  ``predictions.jsonl`` streamed part after part, bounded summary, previews, message);
* **in memory** — the approach it replaced, kept here for the comparison: read the job's whole
  archive, then every part's lines into one list, sort, summarise, write ``predictions.jsonl``
  as one string.

Each figure comes from a fresh process (setup in another one): peak traced Python memory
(tracemalloc, one run), the resident set's growth over the publish (VmHWM minus VmRSS before
it, another run without tracemalloc) and the S3 calls by operation.

    .venv/bin/python benchmarks/bench_inference_publish.py            # 10k, 100k, 400k
    .venv/bin/python benchmarks/bench_inference_publish.py --sizes 10000,100000 --in-memory-max 100000
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "local"), str(ROOT)]

PER_PART = 5000
MIB = 1024 * 1024


def _clients(endpoint: str) -> Any:
    from spotline_local.moto_stack import Clients

    return Clients(endpoint)


def setup(endpoint: str, name: str, images: int) -> dict[str, Any]:
    """Child process: the batch at its last part, in the moto server; what the measurement needs."""
    from tests.support.publish_load import load_batch, provision

    clients = _clients(endpoint)
    settings = provision(clients, name)
    loaded = load_batch(clients, settings, images=images, per_part=PER_PART, batch=name)
    return {
        "run_id": loaded.run.run_id,
        "describe": loaded.describe,
        "parts": loaded.parts,
        "settings": {"name": name, "topic_arn": settings.topic_arn},
    }


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def in_memory_publish(wiring: Any, run: Any, describe: dict[str, Any]) -> None:
    """The approach before streaming: every line of every part in one list (from the former results.py)."""
    from spotline.domain import layout
    from spotline.inference.previews import write_previews
    from spotline.inference.results import part_prefix, results_prefix
    from spotline.inference.summary import worst_score

    bucket = wiring.bucket
    part_of = run.inference
    data = bucket.read_uri(describe["ModelArtifacts"]["S3ModelArtifacts"], cap=128 * MIB)
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            handle = tar.extractfile(member)
            if handle is not None:
                found[member.name] = handle.read()
    lines = [json.loads(r) for r in found["predictions.jsonl"].splitlines() if r.strip()]
    container_summary = json.loads(found["summary.json"])
    prefix = results_prefix(part_of.batch, part_of.generation)

    def put_lines(key: str, rows: list[dict[str, Any]]) -> None:
        body = "".join(json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in rows)
        bucket.put(key, body.encode(), "application/x-ndjson")

    put_lines(part_prefix(prefix, part_of.part) + "predictions.jsonl", lines)
    close = wiring.batches.mark_part_done(part_of.batch, part_of.generation, run.run_id)
    lines = [
        json.loads(r)
        for n in range(1, part_of.parts + 1)
        for r in bucket.read(part_prefix(prefix, n) + "predictions.jsonl", cap=128 * MIB).splitlines()
        if r.strip()
    ]
    lines.sort(key=lambda line: str(line.get("image")))
    per_class: dict[str, int] = dict.fromkeys(container_summary.get("classes") or (), 0)
    with_defects = [str(x["image"]) for x in lines if x.get("detections")]
    for line in lines:
        for d in line.get("detections") or []:
            per_class[str(d.get("class"))] = per_class.get(str(d.get("class")), 0) + 1
    summary = {
        "batch": part_of.batch,
        "images": len(lines),
        "images_with_defects": len(with_defects),
        "detections_per_class": per_class,
        "defect_images": with_defects,
        "runs": [p.run_id for p in close.parts],
        "images_folder": bucket.uri(f"{layout.INFERENCE}{part_of.batch}/"),
    }
    worst = sorted((line for line in lines if line.get("detections")), key=worst_score, reverse=True)
    summary["previews"] = write_previews(bucket, part_of.batch, prefix, worst)
    put_lines(prefix + "predictions.jsonl", lines)
    bucket.put(prefix + "summary.json", json.dumps(summary, indent=2).encode(), "application/json")


def measure(endpoint: str, name: str, approach: str, traced: bool, state: dict[str, Any]) -> dict[str, Any]:
    """Child process: one publish of the loaded batch; peak memory, time and S3 calls."""
    from spotline.domain.states import RunStatus
    from spotline.wiring import Wiring
    from tests.support.publish_load import NOW, counted_calls, settings_for

    clients = _clients(endpoint)
    wiring = Wiring(settings_for(name, state["settings"]["topic_arn"]), clients=clients, clock=lambda: NOW)
    run = wiring.ledger.get_run(state["run_id"])
    wiring.ledger.get_run(state["run_id"])  # clients, models and connections warm before measuring
    clients("s3").list_objects_v2(Bucket=name, MaxKeys=1)
    clients("sns").list_topics()
    rss_before = _vm("VmRSS")
    if traced:
        tracemalloc.start()
    start = time.perf_counter()
    with counted_calls(clients("s3")) as calls:
        if approach == "streamed":
            settled = wiring.publisher.finish(
                run, RunStatus.SUCCEEDED, attempt=1, outcome="COMPLETED", describe=state["describe"]
            )
            assert settled.action == "settled", settled
            assert settled.status == RunStatus.SUCCEEDED, settled
        else:
            in_memory_publish(wiring, run, state["describe"])
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if traced else None
    return {
        "seconds": seconds,
        "traced_peak": peak,
        "rss_growth": _vm("VmHWM") - rss_before,
        "s3_calls": dict(sorted(calls.items())),
    }


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,400000")
    parser.add_argument("--in-memory-max", type=int, default=400_000, help="largest batch measured in memory")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, endpoint, name, *rest = args.child
        if kind == "setup":
            print(json.dumps(setup(endpoint, name, int(rest[0]))))
        else:
            approach, traced, state = rest[0], rest[1] == "traced", json.loads(rest[2])
            print(json.dumps(measure(endpoint, name, approach, traced, state)))
        return

    from spotline_local.moto_stack import MotoServer

    server = MotoServer()
    server.start()
    rows = []
    try:
        for images in [int(s) for s in args.sizes.split(",")]:
            for approach in ("streamed", "in-memory"):
                if approach == "in-memory" and images > args.in_memory_max:
                    rows.append({"images": images, "approach": approach, "skipped": True})
                    continue
                figures: dict[str, Any] = {}
                for traced in ("traced", "rss"):
                    name = f"bench-{approach}-{images}-{traced}"
                    state = _child("setup", server.endpoint, name, str(images))
                    result = _child("measure", server.endpoint, name, approach, traced, json.dumps(state))
                    figures.setdefault("parts", state["parts"])
                    if traced == "traced":
                        figures["traced_peak"] = result["traced_peak"]
                        figures["s3_calls"] = result["s3_calls"]
                    else:
                        figures["rss_growth"] = result["rss_growth"]
                        figures["seconds"] = result["seconds"]
                rows.append({"images": images, "approach": approach, **figures})
                print(_row(rows[-1]), flush=True)
    finally:
        server.stop()
    print()
    print(_table(rows))


def _row(r: dict[str, Any]) -> str:
    if r.get("skipped"):
        return f"{r['images']:>8,} {r['approach']:<10} (not measured: --in-memory-max)"
    calls = r["s3_calls"]
    return (
        f"{r['images']:>8,} {r['approach']:<10} parts {r['parts']:>3}  "
        f"traced peak {r['traced_peak'] / MIB:7.1f} MiB  RSS +{r['rss_growth'] / MIB:7.1f} MiB  "
        f"{r['seconds']:6.1f} s  S3 calls {sum(calls.values()):>4} {calls}"
    )


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| images | parts | approach | peak traced memory | RSS growth | S3 calls | time |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"| {r['images']:,} | | {r['approach']} | not measured | | | |")
            continue
        calls = r["s3_calls"]
        detail = ", ".join(f"{k} {v}" for k, v in calls.items())
        lines.append(
            f"| {r['images']:,} | {r['parts']} | {r['approach']} | {r['traced_peak'] / MIB:.1f} MiB "
            f"| {r['rss_growth'] / MIB:.1f} MiB | {sum(calls.values())} ({detail}) | {r['seconds']:.1f} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
