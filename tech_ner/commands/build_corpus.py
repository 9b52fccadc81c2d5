"""`tech-ner build-corpus`: the embedded corpus's IOB2 files and card from corpus/sources/ (and the wild set)."""

import contextlib
from pathlib import Path
from typing import List, Optional

import typer


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
