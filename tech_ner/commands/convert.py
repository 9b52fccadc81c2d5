"""`tech-ner convert`, `to-bio` and `split`: BIO files to DocBin corpora and back, and a seeded split."""

from pathlib import Path
from typing import List, Optional

import typer

from ..files.problems import InputError, friendly_errors


@friendly_errors
def convert_command(
    inputs: List[Path] = typer.Argument(..., help="BIO files or folders (combined into one corpus)"),
    output: Path = typer.Option(..., "--output", "-o", help="X.spacy, or a folder for sharded output"),
    format: str = typer.Option(
        "auto", "--format", "-f", help="auto, two_column, conll2003, x_column, stackoverflow, csv, jsonl"
    ),
    scheme: str = typer.Option("auto", "--scheme", help="auto, iob1, iob2 or bioes (BILOU counts as bioes)"),
    label_map: Optional[Path] = typer.Option(None, "--label-map", help="JSON object or 'FROM TO' lines"),
    map_: List[str] = typer.Option([], "--map", help="FROM=TO label rule, repeatable; '*' globs; TO=O drops"),
    drop_unmapped: bool = typer.Option(False, "--drop-unmapped", help="Drop entities whose label no rule maps"),
    join: List[str] = typer.Option(
        [], "--join", help="LABEL whose entity joins the entity it directly follows (repeatable), e.g. Version"
    ),
    so_tech: bool = typer.Option(
        False,
        "--so-tech",
        help="StackOverflow preset: the six software types -> TECH, a Version right after one joins it, the rest dropped",
    ),
    drop_so_meta: bool = typer.Option(
        False, "--drop-so-meta", help="Drop StackOverflow post headers and code placeholders"
    ),
    n_sents: int = typer.Option(10, "--n-sents", "-n", help="Sentences per document where the input marks none"),
    tag_names: Optional[str] = typer.Option(None, "--tag-names", help="Names for integer tag ids: comma list or file"),
    encoding: str = typer.Option(
        "auto", "--encoding", help="auto (a UTF-8/16/32 byte-order mark, else UTF-8) or a codec name, e.g. cp1252"
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on the first problem and write nothing"),
    shard_tokens: int = typer.Option(500_000, "--shard-tokens", help="Tokens per shard in folder output"),
):
    """Convert BIO-tagged files into a spaCy DocBin corpus."""
    from ..corpus.convert import convert
    from ..corpus.labels import STACKOVERFLOW_TECH, build_label_map
    from ..files.problems import Problems
    from ..corpus.sentences import ReadOptions
    from ..corpus.tabular import load_tag_names

    rules = list(map_)
    if so_tech:
        rules += [f"{label}=TECH" for label in STACKOVERFLOW_TECH]
        drop_unmapped = True
        join = [*join, "Version"]
    lmap = build_label_map(rules, label_map, drop_unmapped)
    options = ReadOptions(
        format=format, encoding=encoding, drop_so_meta=drop_so_meta, tag_names=load_tag_names(tag_names)
    )
    problems = Problems(strict=strict)
    try:
        stats = convert(
            inputs,
            output,
            read_options=options,
            label_map=lmap,
            n_sents=n_sents,
            scheme=scheme,
            strict=strict,
            shard_tokens=shard_tokens,
            problems=problems,
            join=join,
        )
    finally:  # the problems found before a failure are what explains it
        for p in problems.examples:
            typer.echo(f"warning: {p}", err=True)
        if problems.total > len(problems.examples):
            typer.echo(
                f"warning: ... and {problems.total - len(problems.examples)} more problems (counted below)", err=True
            )
    for path, fmt in stats.read.formats.items():
        typer.echo(f"{path}: {fmt}, {stats.schemes.get(path, '-')}")
    typer.echo(stats.table())
    for note in stats.notes():
        typer.echo(f"- {note}")
    typer.echo(
        f"Wrote {stats.docs_out} documents, {stats.sentences_out} sentences, {stats.tokens_out} tokens "
        f"to {output} ({problems.total} problems repaired or skipped)"
    )


@friendly_errors
def to_bio_command(
    inputs: List[Path] = typer.Argument(..., help=".spacy files or folders"),
    output: Path = typer.Option(..., "--output", "-o"),
    format: str = typer.Option("two_column", "--format", "-f", help="two_column or conll2003"),
):
    """Write DocBin corpora back out as IOB2."""
    from ..corpus.export import export_iob

    counts = export_iob(inputs, output, fmt=format)
    typer.echo(
        f"Wrote {counts['documents']} documents, {counts['sentences']} sentences, {counts['tokens']} tokens to {output}"
    )


@friendly_errors
def split_command(
    inputs: List[Path] = typer.Argument(..., help=".spacy files or folders"),
    out_dir: Path = typer.Option(..., "--out-dir", "-o"),
    ratios: str = typer.Option("0.8,0.1,0.1", "--ratios", help="train,dev,test shares"),
    seed: int = typer.Option(0, "--seed"),
):
    """Split one corpus into train/dev/test by documents, with a seed."""
    from ..corpus.export import split_corpus

    try:
        parts = tuple(float(x) for x in ratios.split(","))
    except ValueError:
        raise InputError(None, None, f"--ratios {ratios!r}: expected three numbers like 0.8,0.1,0.1") from None
    sizes = split_corpus(inputs, out_dir, ratios=parts, seed=seed)
    typer.echo(f"Wrote {out_dir}: " + ", ".join(f"{k} {v} documents" for k, v in sizes.items()))
