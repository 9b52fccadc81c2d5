"""`tech-ner extract --engine ray`: the same rows as the single-host extractor, from a Ray cluster, as shards of a folder.

Two ways in:

- `TermExtractor` (`workers.py`), Ray Data's batch-inference callable: `ds.map_batches(TermExtractor,
  fn_constructor_kwargs={"model": ...}, concurrency=N, num_cpus=C, batch_format="pyarrow")` loads the pipeline once
  per actor (with `apps.inference.load_pipeline`, so the CPU precision is chosen as `tech-ner extract` chooses it;
  `n_process=1`; torch threads set to the CPUs Ray gave the actor) and maps each batch of records (an id and a text
  column) to rows: id, distinct terms, spans (character offsets, label, text), error. A text that is missing, not a
  string or not valid text is an error row, never a dropped one.
- `extract_distributed` (`run.py`, the CLI's engine): the driver plans the input into blocks of about
  `block_records` records (`blocks.py`), each read on a worker with the single-host readers (`jsonl_records`,
  `csv_rows`, `document_record` of `apps/records.py`), so ids, error rows and offsets are those of `tech-ner
  extract`; each block becomes one shard, written by a `ShardWriter` actor.

Ray is imported only when used: the package works without the `distributed` extra.
"""

from .blocks import DEFAULT_BLOCK_RECORDS, KINDS, SHARD_PREFIX, InputFile, plan_blocks, read_block, resolve_files
from .run import FORMATS, DistributedStats, extract_distributed, read_output
from .workers import (
    EXTRA_HINT,
    ShardWriter,
    TermExtractor,
    batch_records,
    require_ray,
    row_schema,
    rows_table,
    write_shard,
)

__all__ = [
    "DEFAULT_BLOCK_RECORDS",
    "EXTRA_HINT",
    "FORMATS",
    "KINDS",
    "SHARD_PREFIX",
    "DistributedStats",
    "InputFile",
    "ShardWriter",
    "TermExtractor",
    "batch_records",
    "extract_distributed",
    "plan_blocks",
    "read_block",
    "read_output",
    "require_ray",
    "resolve_files",
    "row_schema",
    "rows_table",
    "write_shard",
]
