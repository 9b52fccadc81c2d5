"""Train the NER pipeline: `python scripts/train.py CONFIG OUTPUT --paths.train X --paths.dev Y [--gpu-id 0]`."""
from pathlib import Path

import typer
from spacy.cli._util import parse_config_overrides

from tech_ner.pipeline.backbone import BackboneError
from tech_ner.files.problems import InputError
from tech_ner.training.train import train


def main(
    ctx: typer.Context,
    config: Path = typer.Argument(..., exists=True, dir_okay=False),
    output: Path = typer.Argument(...),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g"),
):
    overrides = parse_config_overrides(ctx.args)
    try:
        train(config, output, overrides=overrides, gpu_id=gpu_id)
    except (InputError, BackboneError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Trained: {output}/model-best and {output}/model-last")


if __name__ == "__main__":
    app = typer.Typer(add_completion=False)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(main)
    app()
