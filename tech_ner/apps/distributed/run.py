"""The driver of `tech-ner extract --engine ray`: plan the blocks, check the output folder, run one `ShardWriter`
per worker over the blocks still to do, and record the plan in the folder's manifest. Each block becomes one shard,
named from the block (`shard-FFFFF-BBBBBB-DIGEST.parquet`): a retried task (Ray restarts a killed actor and retries
its task) rewrites the same name, `resume=True` writes only the missing shards, and the shards in name order are the
single-host output in input order."""

import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from ...files.atomic import OUTPUT_MANIFEST, is_own_temporary, manifest_files, refusal, write_text_atomic
from ...files.problems import InputError, same_file
from ..extract import DEFAULT_MAX_PIECE_CHARS, ExtractStats
from ..rows import Row
from .blocks import (
    DEFAULT_BLOCK_RECORDS,
    SHARD_PREFIX,
    InputFile,
    filesystem_of,
    glob_base,
    is_remote,
    plan_blocks,
    resolve_files,
)
from .workers import ShardWriter, require_ray

FORMATS = ("parquet", "jsonl")
# how an InputError raised in an actor's __init__ appears in Ray's message
_INPUT_ERROR_LINE = re.compile(re.escape(f"{InputError.__module__}.{InputError.__qualname__}") + r": (.+)")


def _listing(output: str) -> List[str]:
    """The names in the output folder ([] when it does not exist yet)."""
    from pyarrow import fs

    filesystem, folder, _ = filesystem_of(output)
    info = filesystem.get_file_info(folder)
    if info.type == fs.FileType.NotFound:
        return []
    if info.type != fs.FileType.Directory:
        raise InputError(output, None, "is a file: give a folder for the shards (nothing was written)")
    return sorted(i.base_name for i in filesystem.get_file_info(fs.FileSelector(folder)))


def _read_manifest(output: str) -> Dict[str, Any]:
    filesystem, folder, _ = filesystem_of(output)
    try:
        with filesystem.open_input_stream(f"{folder}/{OUTPUT_MANIFEST}") as f:
            manifest = json.loads(f.read().decode("utf-8"))
        return manifest if isinstance(manifest, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_manifest(output: str, manifest: Dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1) + "\n"
    if not is_remote(output):
        Path(output).mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(output) / OUTPUT_MANIFEST, text)
        return
    filesystem, folder, _ = filesystem_of(output)
    filesystem.create_dir(folder, recursive=True)  # on object storage a prefix needs none: a no-op there
    tmp = f"{folder}/.{OUTPUT_MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
    with filesystem.open_output_stream(tmp) as f:
        f.write(text.encode("utf-8"))
    filesystem.move(tmp, f"{folder}/{OUTPUT_MANIFEST}")


def _check_output_folder(output: str, shards: List[str], fmt: str, resume: bool) -> Tuple[List[str], List[str]]:
    """Check the output folder before anything is written there (the rule of `files.atomic.refusal`, on any
    filesystem; a worker killed while writing a shard leaves a temporary file that is the tool's own).

    RETURNS (Tuple[List[str], List[str]]): The shards already written (resume), and the files of an earlier plan
        that this tool wrote there (listed in its manifest), to be replaced.
    """
    names = _listing(output)
    manifest = _read_manifest(output)
    problem = refusal(names, manifest, what="the shards", temporaries=True)
    if problem:
        raise InputError(output, None, problem)
    own = set(manifest_files(manifest)) | {OUTPUT_MANIFEST}
    planned = {f"{s}.{fmt}" for s in shards}
    if resume and names and own - {OUTPUT_MANIFEST} != planned:
        raise InputError(
            output,
            None,
            "holds shards of another plan (the input, --format, --block-records or a field "
            "changed): run without --resume to start over",
        )
    done = [s for s in shards if f"{s}.{fmt}" in names] if resume else []
    return done, [n for n in names if n in own - planned - {OUTPUT_MANIFEST}]


def _start_output(output: str, shards: List[str], fmt: str, stale: List[str]) -> None:
    """Remove the shards of an earlier plan (listed as this tool's own) and record the plan in the manifest."""
    filesystem, folder, _ = filesystem_of(output)
    for name in stale:
        filesystem.delete_file(f"{folder}/{name}")
    _write_manifest(output, {"files": sorted(f"{s}.{fmt}" for s in shards), "complete": False})


def read_output(output: str) -> Iterator[Row]:
    """The rows of an output folder, shard by shard in name order: the input order (Parquet ids are strings)."""
    filesystem, folder, _ = filesystem_of(output)
    for name in _listing(output):
        if not name.startswith(SHARD_PREFIX):
            continue
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            yield from pq.read_table(f"{folder}/{name}", filesystem=filesystem).to_pylist()
        elif name.endswith(".jsonl"):
            with filesystem.open_input_stream(f"{folder}/{name}") as f:
                yield from (json.loads(line) for line in f.read().decode("utf-8").splitlines())


def _check_output_outside(output: str, inputs: Sequence[str], files: Sequence[InputFile]) -> None:
    """Refuse a local output that is an input, or lies in a folder the input lists (the next run would read the shards)."""
    same_file(output, [f.path for f in files if "://" not in f.location])
    out = Path(output).resolve()
    for raw in inputs:
        listed = Path(glob_base(str(raw))[0])
        if "://" not in str(raw) and listed.is_dir() and (out == listed.resolve() or listed.resolve() in out.parents):
            raise InputError(output, None, f"is inside the input folder {listed}: choose an output folder outside it")


# ---------------------------------------------------------------------------- the run


@dataclass
class DistributedStats(ExtractStats):
    """What a distributed run did: `ExtractStats` (rows, errors, words of this run; `resumed`: rows in the
    shards already there), and

    shards (int): Shards written by this run. shards_resumed (int): Shards already there. records (int): Records planned.
    seconds (float): From submitting the first block to the last shard written (actors' start-up included).
    busy_seconds (float): From the first block an actor began to the last shard written (start-up excluded).
    workers (Dict[int, float]): Peak RSS in MB of each worker process (by pid).
    """

    shards: int = 0
    shards_resumed: int = 0
    records: int = 0
    busy_seconds: float = 0.0
    workers: Dict[int, float] = field(default_factory=dict)


def _user_errors(items: Iterator[Any]) -> Iterator[Any]:
    """Re-raise an InputError a worker raised (e.g. a model it cannot load) as one line, not as Ray's wrapper with
    its traceback. An actor that fails in `__init__` reaches the driver as ActorDiedError, with the InputError only
    in its message text: that line is taken from there."""
    try:
        yield from items
    except Exception as e:
        seen: Set[int] = set()
        cause: Optional[BaseException] = e
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            if type(cause) is InputError:
                raise InputError(cause.path, cause.line, cause.message) from None
            found = _INPUT_ERROR_LINE.findall(str(cause))
            if found:
                raise InputError(None, None, found[-1].strip()) from None
            cause = getattr(cause, "cause", None) or cause.__cause__ or cause.__context__
        raise


def _check_resources(ray, workers: int, cpus: float, gpus: float) -> None:
    total = ray.cluster_resources()
    need = {"CPU": workers * cpus, "GPU": workers * gpus}
    for what, amount in need.items():
        if amount and total.get(what, 0) < amount:
            raise InputError(
                None,
                None,
                f"{workers} workers x {amount / workers:g} {what}s need {amount:g} {what}s; "
                f"the cluster has {total.get(what, 0):g}: lower --workers or the per-worker "
                f"{what.lower()}s",
            )


def extract_distributed(
    model: str,
    inputs: Sequence[str],
    output: str,
    *,
    fmt: str = "parquet",
    address: Optional[str] = None,
    workers: int = 1,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    resume: bool = False,
    text_field: str = "text",
    id_field: str = "id",
    precision: Optional[str] = None,
    batch_size: int = 64,
    block_records: int = DEFAULT_BLOCK_RECORDS,
    max_piece_chars: int = DEFAULT_MAX_PIECE_CHARS,
    max_length: Optional[int] = None,
    progress: bool = False,
    on_shard: Optional[Callable[[Dict[str, Any], int, int], None]] = None,
) -> DistributedStats:
    """Run the pipeline over the inputs on Ray: one shard per planned block in the folder `output`.

    Without `address` and without a running Ray in this process, a local Ray is started (and stopped after).
    on_shard (Optional[Callable]): Called with each finished shard's summary, the shards done and the shards to do.
    RETURNS (DistributedStats): What was written.
    """
    if fmt not in FORMATS:
        raise InputError(None, None, f"--format {fmt!r}: expected parquet or jsonl")
    if workers < 1 or cpus_per_worker <= 0 or gpus_per_worker < 0:
        raise InputError(None, None, "--workers must be >= 1, --cpus-per-worker > 0 and --gpus-per-worker >= 0")
    ray = require_ray()
    files = resolve_files(inputs, text_field=text_field)
    if not is_remote(output):
        _check_output_outside(output, inputs, files)
    blocks = plan_blocks(files, block_records=block_records, text_field=text_field, id_field=id_field)
    shards = [b["shard"] for b in blocks]
    done_list, stale = _check_output_folder(output, shards, fmt, resume)
    done = set(done_list)
    if os.sep in str(model) and "://" not in str(model) and not Path(model).exists():  # before any worker tries
        raise InputError(model, None, "cannot load the pipeline: no such folder")
    _start_output(output, shards, fmt, stale)
    todo = [b for b in blocks if b["shard"] not in done]
    stats = DistributedStats(
        resumed=sum(b["records"] for b in blocks if b["shard"] in done),
        shards_resumed=len(done),
        records=sum(b["records"] for b in blocks),
        output=Path(output) if not is_remote(output) else None,
    )
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        _check_resources(ray, workers, cpus_per_worker, gpus_per_worker)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        context.print_on_execution_start = False
        t0 = time.perf_counter()
        first, last = float("inf"), float("-inf")
        if todo:
            ds = ray.data.from_items([{"block": json.dumps(b)} for b in todo], override_num_blocks=len(todo))
            results = ds.map_batches(
                ShardWriter,
                batch_size=1,
                num_cpus=cpus_per_worker,
                num_gpus=gpus_per_worker,
                # a fixed pool (what concurrency=N means), one block at a time per actor: the blocks spread evenly
                compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
                fn_constructor_kwargs={
                    "model": str(model),
                    "output": str(output),
                    "fmt": fmt,
                    "precision": precision,
                    "text_field": text_field,
                    "id_field": id_field,
                    "batch_size": batch_size,
                    "max_piece_chars": max_piece_chars,
                    "max_length": max_length,
                },
            )
            for summary in _user_errors(results.iter_rows()):
                stats.shards += 1
                stats.rows += summary["rows"]
                stats.errors += summary["errors"]
                stats.words += summary["words"]
                if len(stats.error_examples) < 20:
                    stats.error_examples += json.loads(summary["error_examples"])[: 20 - len(stats.error_examples)]
                first = min(first, float(summary["started"]))
                last = max(last, float(summary["finished"]))
                pid = int(summary["pid"])
                stats.workers[pid] = max(stats.workers.get(pid, 0.0), float(summary["peak_rss_mb"]))
                if on_shard is not None:
                    on_shard(summary, stats.shards, len(todo))
        stats.seconds = time.perf_counter() - t0
        stats.busy_seconds = max(0.0, last - first)
    finally:
        if started_here:
            ray.shutdown()
    missing = [s for s in shards if f"{s}.{fmt}" not in _listing(output)]
    planned_rows = sum(b["records"] for b in todo)
    if missing or stats.rows != planned_rows:  # a consistency check: every record in exactly one row
        raise AssertionError(f"{len(missing)} shards missing, {stats.rows} rows written of {planned_rows} planned")
    filesystem, folder, _ = filesystem_of(output)
    written = [f"{s}.{fmt}" for s in shards]
    for name in _listing(output):
        if is_own_temporary(name, written):  # left by a worker killed while writing; its task was retried
            filesystem.delete_file(f"{folder}/{name}")
    _write_manifest(output, {"files": sorted(written), "complete": True, "records": stats.records})
    return stats
