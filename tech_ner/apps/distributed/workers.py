"""The workers of `tech-ner extract --engine ray`: `TermExtractor`, Ray Data's batch-inference callable (the
pipeline loaded once per actor), and `ShardWriter`, the CLI's actor that reads a planned block and writes its shard
(a temporary name, then renamed: a shard is whole or absent). Ray and pyarrow are imported only when used."""

import json
import os
import resource
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ...files.atomic import atomic_path
from ...files.problems import InputError
from ...files.textfile import text_problem
from ..extract import DEFAULT_MAX_PIECE_CHARS, count_words, extract_rows
from ..inference import load_pipeline
from ..records import Record
from ..rows import JsonlRowWriter, Row
from .blocks import filesystem_of, is_remote, read_block

EXTRA_HINT = 'install the extra: pip install -e ".[distributed]" (or pip install "tech-ner[distributed]")'


def require_ray():
    """RETURNS (module): `ray` with Ray Data; without the extra, an InputError naming it."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise InputError(
            None, None, f"--engine ray needs Ray Data ({e.name or e} is not installed): {EXTRA_HINT}"
        ) from None
    return ray


# ---------------------------------------------------------------------------- rows as Arrow


def row_schema(id_type=None):
    """RETURNS (pyarrow.Schema): id, terms (list of strings), spans (list of start, end, label, text), error."""
    import pyarrow as pa

    span = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()), ("text", pa.string())])
    return pa.schema(
        [
            ("id", id_type or pa.string()),
            ("terms", pa.list_(pa.string())),
            ("spans", pa.list_(span)),
            ("error", pa.string()),
        ]
    )


def rows_table(rows: Sequence[Row], ids=None):
    """The rows as a pyarrow Table (`row_schema`); ids are strings unless `ids` (an Arrow array) is given."""
    import pyarrow as pa

    if ids is None:
        ids = pa.array([None if r["id"] is None else str(r["id"]) for r in rows], pa.string())
    schema = row_schema(ids.type)
    columns = [ids] + [
        pa.array([r[name] for r in rows], schema.field(name).type) for name in ("terms", "spans", "error")
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _as_table(batch):
    import pyarrow as pa

    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, dict):
        return pa.table({k: pa.array(list(v)) for k, v in batch.items()})
    return pa.Table.from_pandas(batch, preserve_index=False)


def batch_records(table, text_field: str = "text", id_field: str = "id") -> List[Record]:
    """One Record per row of a batch: the text, or an error when it is missing, not a string, or not valid text."""
    if text_field not in table.column_names or id_field not in table.column_names:
        missing = text_field if text_field not in table.column_names else id_field
        raise ValueError(
            f"no {missing!r} column in the batch (columns: {', '.join(table.column_names)}): "
            "name the columns with text_field= and id_field="
        )
    records = []
    for i, (doc_id, text) in enumerate(zip(table.column(id_field).to_pylist(), table.column(text_field).to_pylist())):
        if not isinstance(text, str):
            what = "null" if text is None else f"{type(text).__name__}, not a string"
            records.append(Record(i, doc_id, error=f"id {doc_id}: field {text_field!r} is {what}"))
        elif text_problem(text) is not None:
            records.append(Record(i, doc_id, error=f"id {doc_id}: field {text_field!r} holds {text_problem(text)}"))
        else:
            records.append(Record(i, doc_id, text))
    return records


# ---------------------------------------------------------------------------- the actor


class TermExtractor:
    """Ray Data's callable class for `map_batches`: the pipeline loaded once per actor, batches of records to rows.

    model (str): An installed pipeline package or a folder every worker can read.
    precision (Optional[str]): fp32, bf16, int8 or auto; None: the pipeline's own choice (as `tech-ner extract`).
    text_field (str): The batch's text column. id_field (str): Its id column (kept as it is, type included).
    batch_size (int): Documents per `nlp.pipe` batch.
    max_piece_chars (int): Longer texts are processed in pieces (see `extract_rows`).
    max_length (Optional[int]): Override `nlp.max_length`.
    threads (Optional[int]): Torch threads; None: the CPUs Ray assigned to this actor (1 outside Ray).
    """

    def __init__(
        self,
        model: str,
        *,
        precision: Optional[str] = None,
        text_field: str = "text",
        id_field: str = "id",
        batch_size: int = 64,
        max_piece_chars: int = DEFAULT_MAX_PIECE_CHARS,
        max_length: Optional[int] = None,
        threads: Optional[int] = None,
    ):
        import torch

        cpus, gpus = _assigned_resources()
        torch.set_num_threads(max(1, int(threads or cpus)))
        self.nlp = load_pipeline(model, precision=precision, gpu_id=0 if gpus else -1, max_length=max_length)
        self.text_field, self.id_field = text_field, id_field
        self.batch_size, self.max_piece_chars = batch_size, max_piece_chars

    def rows(self, records: Iterable[Record]) -> Iterator[Row]:
        """RETURNS (Iterator[Row]): One row per record, in order, exactly as `tech-ner extract` makes them."""
        return extract_rows(
            self.nlp, records, batch_size=self.batch_size, n_process=1, max_piece_chars=self.max_piece_chars
        )

    def __call__(self, batch):
        """batch (pyarrow.Table, pandas.DataFrame or dict of arrays): Records. RETURNS (pyarrow.Table): Their rows."""
        table = _as_table(batch)
        rows = list(self.rows(batch_records(table, self.text_field, self.id_field)))
        return rows_table(rows, ids=table.column(self.id_field).combine_chunks())


def _assigned_resources() -> Tuple[float, float]:
    """RETURNS (Tuple[float, float]): The CPUs and GPUs Ray gave this actor; (1, 0) outside Ray."""
    try:
        import ray

        if ray.is_initialized():
            assigned = ray.get_runtime_context().get_assigned_resources()
            return assigned.get("CPU", 1.0) or 1.0, assigned.get("GPU", 0.0)
    except ImportError:
        pass
    return 1.0, 0.0


class ShardWriter(TermExtractor):
    """The CLI's actor: each input row is a planned block (JSON); it reads the block's records on this worker,
    writes their rows as one shard (temporary name, then renamed) and returns what it did."""

    def __init__(self, model: str, *, output: str, fmt: str, **kwargs):
        super().__init__(model, **kwargs)
        self.output, self.fmt = output, fmt

    def __call__(self, batch) -> Dict[str, List[Any]]:
        out: Dict[str, List[Any]] = {
            k: []
            for k in (
                "shard",
                "rows",
                "errors",
                "error_examples",
                "words",
                "seconds",
                "pid",
                "peak_rss_mb",
                "started",
                "finished",
            )
        }
        for spec in _as_table(batch).column("block").to_pylist():
            spec = json.loads(spec)
            started = time.time()
            words = [0]

            def counted(records: Iterator[Record]) -> Iterator[Record]:
                for record in records:
                    words[0] += count_words(record.text)
                    yield record

            rows = list(self.rows(counted(read_block(spec, self.text_field, self.id_field))))
            if len(rows) != spec["records"]:  # a consistency check: planning and reading disagree
                raise AssertionError(f"{spec['shard']}: planned {spec['records']} records, read {len(rows)}")
            write_shard(self.output, spec["shard"], rows, self.fmt)
            errors = [r["error"] for r in rows if r["error"] is not None]
            out["shard"].append(spec["shard"])
            out["rows"].append(len(rows))
            out["errors"].append(len(errors))
            out["error_examples"].append(json.dumps(errors[:20]))
            out["words"].append(words[0])
            out["seconds"].append(time.time() - started)
            out["pid"].append(os.getpid())
            out["peak_rss_mb"].append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            out["started"].append(started)
            out["finished"].append(time.time())
        return out


# ---------------------------------------------------------------------------- shards


def write_shard(output: str, shard: str, rows: Sequence[Row], fmt: str) -> None:
    """Write one shard under a temporary name and rename it, so a shard is either whole or absent."""
    if not is_remote(output):
        with atomic_path(Path(output) / f"{shard}.{fmt}") as local_tmp:
            _write_rows(str(local_tmp), rows, fmt, None)
        return
    filesystem, folder, _ = filesystem_of(output)
    tmp = f"{folder}/.{shard}.{fmt}.{uuid.uuid4().hex[:8]}.tmp"
    _write_rows(tmp, rows, fmt, filesystem)
    filesystem.move(tmp, f"{folder}/{shard}.{fmt}")  # an object store's move is a whole copy: never half visible


def _write_rows(path: str, rows: Sequence[Row], fmt: str, filesystem) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(rows_table(rows), path, filesystem=filesystem)
        return
    if filesystem is None:
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = JsonlRowWriter(f)
            for row in rows:
                writer.write(row)
        return
    with filesystem.open_output_stream(path) as f:
        f.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8"))
