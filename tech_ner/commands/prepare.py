"""`tech-ner prepare`: the workflow's convert step, BIO data (a folder of train/dev/test files, or one file) ->
train/dev/test.spacy and corpus.json."""

from pathlib import Path
from typing import List

import typer

from ..files.problems import InputError, friendly_errors

# The embedded corpus: converted strictly by default (it must be clean). Where `spacy project run` works (the
# project folder, the current directory) and in the checkout this package comes from.
EMBEDDED_DIRS = (Path("corpus") / "bio", Path(__file__).resolve().parents[2] / "corpus" / "bio")


@friendly_errors
def prepare_command(
    source: Path = typer.Argument(..., help="A folder of train.*/dev.*/test.* BIO files, or one file to split by seed"),
    out_dir: Path = typer.Option(..., "--out-dir", "-o"),
    mode: str = typer.Option(
        "auto",
        "--mode",
        help="strict (stop at the first problem), repair (repair, skip and "
        "report) or auto (strict for the embedded corpus, repair otherwise)",
    ),
    n_sents: int = typer.Option(10, "--n-sents", "-n"),
    seed: int = typer.Option(0, "--seed"),
    label_map: str = typer.Option(
        "", "--label-map", help="A label map file (JSON or 'FROM TO' lines); empty keeps labels"
    ),
    map_: List[str] = typer.Option([], "--map", help="FROM=TO label rule, repeatable"),
):
    """The workflow's convert step: BIO data (a folder of train/dev/test files, or one file) -> train/dev/test.spacy."""
    from ..corpus.labels import build_label_map
    from ..corpus.prepare import prepare_corpus
    from ..corpus.sentences import ReadOptions

    if mode not in ("strict", "repair", "auto"):
        raise InputError(None, None, f"--mode {mode!r}: use strict, repair or auto")
    embedded = any(source.resolve() == d.resolve() for d in EMBEDDED_DIRS)
    if mode == "auto":
        mode = "strict" if embedded else "repair"
    lmap = build_label_map(map_, Path(label_map) if label_map else None) if (map_ or label_map) else None
    info, all_stats = prepare_corpus(
        source,
        out_dir,
        strict=mode == "strict",
        n_sents=n_sents,
        seed=seed,
        label_map=lmap,
        read_options=ReadOptions(),
        embedded=embedded,
    )
    for stats in all_stats:
        for p in stats.problems.examples:
            typer.echo(f"warning: {p}", err=True)
        if stats.problems.total > len(stats.problems.examples):
            typer.echo(
                f"warning: ... and {stats.problems.total - len(stats.problems.examples)} more problems", err=True
            )
        typer.echo(stats.table())
        for note in stats.notes():
            typer.echo(f"- {note}")
    sizes = ", ".join(f"{k} {v['documents']}" for k, v in info["splits"].items() if k != "all")
    repaired = sum(s.problems.total for s in all_stats)
    typer.echo(
        f"Wrote {out_dir}/{{train,dev,test}}.spacy from {source} ({info['split_rule']}; documents: {sizes}; "
        f"labels {', '.join(info['labels']) or 'none'}; {repaired} problems repaired or skipped, mode {mode})"
    )
