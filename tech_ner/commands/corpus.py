"""`tech-ner build-corpus` (the embedded corpus from corpus/sources/) and `tech-ner prepare` (the workflow's
convert step: BIO data -> train/dev/test.spacy)."""
import contextlib
from pathlib import Path
from typing import List, Optional

import typer

from ..files.problems import InputError, friendly_errors

# The embedded corpus: converted strictly by default (it must be clean). Where `spacy project run` works (the
# project folder, the current directory) and in the checkout this package comes from.
EMBEDDED_DIRS = (Path("corpus") / "bio", Path(__file__).resolve().parents[2] / "corpus" / "bio")


@contextlib.contextmanager
def problems_stop(what: str):
    """Print a CorpusError's problems, one a line, and exit 1."""
    from ..corpus.embedded import CorpusError

    try:
        yield
    except CorpusError as e:
        for p in e.problems:
            typer.echo(p, err=True)
        typer.echo(f"error: {len(e.problems)} problems {what}", err=True)
        raise typer.Exit(1)


def build_corpus_command(
    sources: Path = typer.Option(Path("corpus/sources"), exists=True, file_okay=False),
    out_dir: Path = typer.Option(Path("corpus/bio")),
    card: Path = typer.Option(Path("corpus/README.md")),
    seed: int = typer.Option(13),
    wild: Optional[Path] = typer.Option(Path("corpus/wild"), help="The held-out wild set: sources/*.txt -> bio/*.tsv"),
    check: Optional[List[Path]] = typer.Option(None, "--check", help="Only check these source files"),
):
    """Build corpus/bio/{train,dev,test}.tsv and corpus/README.md from corpus/sources/ (and the wild set).

    `--check FILE...` only checks source files (markup, token alignment, length, duplicates against the whole
    corpus) and lists every problem as file:line.
    """
    from ..corpus.embedded import build, build_heldout, find_duplicates, read_sources, tokenise
    from ..pipeline.tokenizer import tech_blank

    nlp = tech_blank()
    if check:
        sentences, problems = read_sources(sources)
        problems += tokenise(sentences, nlp)
        problems += find_duplicates(sentences)
        wanted = {str(p.resolve()) for p in check}
        mine = [p for p in problems if str(Path(p.split(":", 1)[0]).resolve()) in wanted]
        for p in mine:
            typer.echo(p)
        n = sum(str(Path(s.path).resolve()) in wanted for s in sentences)
        typer.echo(f"{n} sentences checked, {len(mine)} problems")
        raise typer.Exit(1 if mine else 0)
    with problems_stop(f"in {sources}; nothing was written"):
        splits = build(sources, out_dir, card, nlp, seed=seed)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
    typer.echo(f"Wrote {out_dir}/{{train,dev,test}}.tsv ({sizes} sentences) and {card}")
    if wild is not None:
        with problems_stop(f"in {wild}/sources; the wild set was not written"):
            heldout = build_heldout(wild / "sources", wild / "bio", wild / "STATS.md", nlp, corpus_dir=sources)
        sizes = ", ".join(f"{k} {len(v)}" for k, v in heldout.items())
        typer.echo(f"Wrote {wild}/bio/{{{','.join(heldout)}}}.tsv ({sizes} sentences) and {wild}/STATS.md")



@friendly_errors
def prepare_command(
    source: Path = typer.Argument(..., help="A folder of train.*/dev.*/test.* BIO files, or one file to split by seed"),
    out_dir: Path = typer.Option(..., "--out-dir", "-o"),
    mode: str = typer.Option("auto", "--mode", help="strict (stop at the first problem), repair (repair, skip and "
                                                    "report) or auto (strict for the embedded corpus, repair otherwise)"),
    n_sents: int = typer.Option(10, "--n-sents", "-n"),
    seed: int = typer.Option(0, "--seed"),
    label_map: str = typer.Option("", "--label-map", help="A label map file (JSON or 'FROM TO' lines); empty keeps labels"),
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
    info, all_stats = prepare_corpus(source, out_dir, strict=mode == "strict", n_sents=n_sents, seed=seed,
                                     label_map=lmap, read_options=ReadOptions(), embedded=embedded)
    for stats in all_stats:
        for p in stats.problems.examples:
            typer.echo(f"warning: {p}", err=True)
        if stats.problems.total > len(stats.problems.examples):
            typer.echo(f"warning: ... and {stats.problems.total - len(stats.problems.examples)} more problems", err=True)
        typer.echo(stats.table())
        for note in stats.notes():
            typer.echo(f"- {note}")
    sizes = ", ".join(f"{k} {v['documents']}" for k, v in info["splits"].items() if k != "all")
    repaired = sum(s.problems.total for s in all_stats)
    typer.echo(f"Wrote {out_dir}/{{train,dev,test}}.spacy from {source} ({info['split_rule']}; documents: {sizes}; "
               f"labels {', '.join(info['labels']) or 'none'}; {repaired} problems repaired or skipped, mode {mode})")

