"""`tech-ner evaluate`: score a trained pipeline on gold splits and write metrics, a report and plots."""

from pathlib import Path
from typing import List, Optional

import typer

from ..files.problems import friendly_errors
from ..files.problems import InputError


def split_names(names: Optional[str], data: List[Path]) -> List[str]:
    """Split names from a comma list, or the files' stems; one per file, unique."""
    found = [n.strip() for n in names.split(",")] if names else [Path(p).stem for p in data]
    if len(found) != len(data):
        raise InputError(None, None, f"--names {names!r}: give one name per data file ({len(data)} files)")
    if len(set(found)) != len(found) or not all(found):
        raise InputError(None, None, f"split names {found}: names must be non-empty and unique (use --names)")
    return found


@friendly_errors
def evaluate_command(
    model: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="Trained pipeline folder, e.g. training/model-best"
    ),
    data: List[Path] = typer.Argument(..., exists=True, help="Gold .spacy files, one per split"),
    output_dir: Path = typer.Option(
        Path("metrics"), "--output-dir", "-o", help="Folder for metrics.json, report.md and plots"
    ),
    names: Optional[str] = typer.Option(
        None, "--names", "-n", help="Split names, one per file, e.g. train,test (default: file stems)"
    ),
    log: Optional[Path] = typer.Option(
        None, "--log", help="Training log (JSON lines of spacy.ConsoleLogger.v3 output_file)"
    ),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, or -1 for CPU"),
    batch_size: int = typer.Option(64, "--batch-size", help="Documents per nlp.pipe batch"),
):
    """Evaluate a pipeline: spaCy's scorer, seqeval (default and strict IOB2),
    per-label report, confusion table, raw-text mode and the parity check.
    Exits 1 after writing everything when spaCy and seqeval strict disagree."""
    from ..apps.inference import load_pipeline
    from ..evaluation.evaluate import evaluate_corpus, summary_line, write_reports
    from ..evaluation.plots import plot_confusion, plot_training_curve

    splits = split_names(names, data)
    nlp = load_pipeline(model, gpu_id=gpu_id, clean_docs=False)
    results = {name: evaluate_corpus(nlp, path, batch_size=batch_size) for name, path in zip(splits, data)}
    output_dir = Path(output_dir)
    skipped = plot_training_curve(log, output_dir / "training_curve.png")
    if skipped:
        typer.echo(f"note: training curve skipped: {skipped}", err=True)
    for name, r in results.items():
        plot_confusion(r["confusion"], output_dir / f"confusion_{name}.png", title=f"Token confusion: {name}")
    write_reports(results, output_dir, model=str(model), training_curve=skipped is None)
    failed = []
    for name, r in results.items():
        line, passed = summary_line(name, r)
        typer.echo(line)
        if not passed:
            failed.append(name)
    typer.echo(f"Wrote {output_dir / 'metrics.json'}, {output_dir / 'report.md'} and plots")
    if failed:
        for name in failed:
            par = results[name]["parity"]
            typer.echo(f"parity failed on {name}: {par['summary']}", err=True)
            for line in par["lines"]:
                typer.echo(f"  - {line}", err=True)
        raise typer.Exit(1)
