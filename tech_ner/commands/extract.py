"""`tech-ner extract`: technology terms of every document of a corpus, one output row per document."""

import logging
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import typer

from ..files.problems import InputError, friendly_errors

PRECISION_CHOICES = ("fp32", "bf16", "int8", "auto")


class _Progress:
    """A rich progress line on stderr: documents, documents/s, words/s."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.docs = self.words = 0
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.bar = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.completed:,} docs"),
                TextColumn("{task.fields[dps]:,.1f} docs/s"),
                TextColumn("{task.fields[wps]:,.0f} words/s"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("extract", total=None, dps=0.0, wps=0.0)
        return self

    def __call__(self, row, words: int) -> None:
        self.docs += 1
        self.words += words
        now = time.perf_counter()
        if self.bar is not None and now - self.last > 0.2:
            seconds = max(now - self.t0, 1e-9)
            self.bar.update(self.task, completed=self.docs, dps=self.docs / seconds, wps=self.words / seconds)
            self.last = now

    def __exit__(self, *exc):
        if self.bar is not None:
            seconds = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.update(self.task, completed=self.docs, dps=self.docs / seconds, wps=self.words / seconds)
            self.bar.__exit__(*exc)
        return False


def _extract_on_ray(
    inputs: Sequence[str],
    output: Path,
    *,
    model: str,
    fmt: str,
    strict: bool,
    n_process: int,
    gpu_id: int,
    progress: bool,
    **options: Any,
) -> None:
    """`tech-ner extract --engine ray`: run `extract_distributed` and print what `tech-ner extract` prints."""
    from ..apps.distributed import extract_distributed, require_ray

    if strict:
        raise InputError(
            None,
            None,
            "--strict is for --engine local: with --engine ray a malformed record is an error "
            "row, counted in the summary",
        )
    if n_process != 1 or gpu_id != -1:
        raise InputError(
            None,
            None,
            "--n-process and --gpu-id are for --engine local: with --engine ray use --workers, "
            "--cpus-per-worker and --gpus-per-worker",
        )

    def shown(summary: Dict[str, Any], done: int, todo: int) -> None:
        typer.echo(
            f"shard {done}/{todo}: {summary['shard']} ({summary['rows']} rows, {summary['errors']} error rows, "
            f"{summary['words'] / max(summary['seconds'], 1e-9):,.0f} words/s)",
            err=True,
        )

    require_ray()
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # the summary line below says what the run did
    if progress:
        typer.echo("planning the shards, then starting Ray ...", err=True)
    stats = extract_distributed(model, inputs, str(output), fmt=fmt, on_shard=shown if progress else None, **options)
    for message in stats.error_examples:
        typer.echo(f"warning: {message}; wrote an error row", err=True)
    if stats.errors > len(stats.error_examples):
        typer.echo(f"warning: ... and {stats.errors - len(stats.error_examples)} more error rows", err=True)
    resumed = f", {stats.shards_resumed} shards resumed" if stats.shards_resumed else ""
    peak = max(stats.workers.values(), default=0.0)
    typer.echo(
        f"Wrote {stats.rows} rows in {stats.shards} shards ({stats.errors} error rows{resumed}; {stats.records} "
        f"records in all) to {output}: {stats.words:,} words in {stats.seconds:.1f} s ({stats.words_per_s:,.0f} "
        f"words/s, {len(stats.workers)} worker processes, peak RSS {peak:,.0f} MB)"
    )


@friendly_errors
def extract_command(
    inputs: List[str] = typer.Argument(
        ...,
        help=".txt files or folders of them (one document per file), .jsonl, "
        ".csv, or - for stdin (one document per line)",
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="X.csv or X.jsonl: one row per input document, in input order (--engine ray: a folder of shards)",
    ),
    model: str = typer.Option("training/model-best", "--model", "-m", help="Pipeline package name or folder"),
    text_field: str = typer.Option("text", "--text-field", help="JSONL field / CSV column with the text"),
    id_field: str = typer.Option(
        "id", "--id-field", help="JSONL field / CSV column with the id (else the line or row number)"
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Documents per nlp.pipe batch"),
    n_process: int = typer.Option(1, "--n-process", min=1, help="Worker processes (one torch thread each)"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, or -1 for CPU"),
    precision: Optional[str] = typer.Option(
        None,
        "--precision",
        help="fp32, bf16, int8 or auto (CPU fast path; default: the pipeline's cpu_precision setting, else fp32)",
    ),
    max_length: Optional[int] = typer.Option(
        None,
        "--max-length",
        help="Split texts longer than this many characters (default: the pipeline's nlp.max_length)",
    ),
    max_piece_chars: int = typer.Option(
        2_500,  # apps.extract.DEFAULT_MAX_PIECE_CHARS (not imported here: it loads spaCy; a test checks they agree)
        "--max-piece-chars",
        min=1,
        help="Process longer texts in pieces of at "
        "most this many characters (cut at paragraph, sentence or word ends): peak memory "
        "grows with batch-size x this, not with the text; each text still gives one row",
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Exit 1 on the first malformed line or row and write no output"
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUTPUT.partial"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress on stderr (documents/s, words/s)"),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local (this process) or ray: a Ray cluster writes OUTPUT as a "
        "folder of shards (needs the distributed extra)",
    ),
    address: Optional[str] = typer.Option(
        None, "--address", help="ray: auto or ray://HOST:10001 (default: a local Ray)"
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="ray: actors, each with the pipeline loaded once"),
    cpus_per_worker: float = typer.Option(1, "--cpus-per-worker", help="ray: CPUs (torch threads) per actor"),
    gpus_per_worker: float = typer.Option(0, "--gpus-per-worker", help="ray: GPUs per actor"),
    out_format: str = typer.Option("parquet", "--format", help="ray: shard format, parquet or jsonl"),
    block_records: int = typer.Option(500, "--block-records", min=1, help="ray: records per shard (about)"),
):
    """Extract the technology terms of every document: one row per input document, in input order,
    with its id, distinct terms and entity spans (character offsets and labels)."""
    from ..apps.extract import LongDocumentWarning, extract
    from ..apps.inference import load_pipeline
    from ..apps.records import resolve_inputs
    from ..apps.rows import check_paths, output_format, partial_path

    if precision is not None and precision not in PRECISION_CHOICES:
        raise InputError(None, None, f"--precision {precision!r}: expected one of {', '.join(PRECISION_CHOICES)}")
    if engine not in ("local", "ray"):
        raise InputError(None, None, f"--engine {engine!r}: expected local or ray")
    if engine == "ray":
        return _extract_on_ray(
            inputs,
            output,
            model=model,
            text_field=text_field,
            id_field=id_field,
            batch_size=batch_size,
            precision=precision,
            max_length=max_length,
            max_piece_chars=max_piece_chars,
            strict=strict,
            resume=resume,
            progress=progress,
            address=address,
            workers=workers,
            gpus_per_worker=gpus_per_worker,
            cpus_per_worker=cpus_per_worker,
            fmt=out_format,
            block_records=block_records,
            n_process=n_process,
            gpu_id=gpu_id,
        )
    output_format(output)  # check the cheap things before loading the model
    check_paths(output, resolve_inputs(inputs, text_field=text_field))
    partial = partial_path(output)
    if partial.exists() and not resume:
        typer.echo(f"note: {partial} exists from an earlier run; starting over (--resume continues it)", err=True)
    nlp = load_pipeline(model, precision=precision, gpu_id=gpu_id, max_length=max_length)
    from ..pipeline.precision import current_precision

    with warnings.catch_warnings():
        warnings.simplefilter("always", LongDocumentWarning)
        try:
            with _Progress(progress) as bar:
                stats = extract(
                    nlp,
                    inputs,
                    output,
                    text_field=text_field,
                    id_field=id_field,
                    batch_size=batch_size,
                    n_process=n_process,
                    strict=strict,
                    resume=resume,
                    on_row=bar,
                    max_piece_chars=max_piece_chars,
                )
        except KeyboardInterrupt:
            typer.echo(f"interrupted: the rows so far are in {partial}; run again with --resume to continue", err=True)
            raise typer.Exit(130)
    for message in stats.error_examples:
        typer.echo(f"warning: {message}; wrote an error row", err=True)
    if stats.errors > len(stats.error_examples):
        typer.echo(f"warning: ... and {stats.errors - len(stats.error_examples)} more error rows", err=True)
    resumed = f", {stats.resumed} rows resumed" if stats.resumed else ""
    typer.echo(
        f"Wrote {stats.resumed + stats.rows} rows ({stats.errors} error rows{resumed}) to {output}: "
        f"{stats.words:,} words in {stats.seconds:.1f} s ({stats.docs_per_s:,.1f} docs/s, "
        f"{stats.words_per_s:,.0f} words/s, {current_precision(nlp)})"
    )
