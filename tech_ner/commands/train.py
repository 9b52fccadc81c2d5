"""`tech-ner train CONFIG OUTPUT --paths.train X --paths.dev Y [--gpu-id 0]`: train the NER pipeline.

Config overrides come from the command line and from SPACY_CONFIG_OVERRIDES (spaCy's `parse_config_overrides`
reads both)."""

from pathlib import Path

import typer

# unknown options are config overrides (--paths.train X), as for `spacy train`
CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def train_command(
    ctx: typer.Context,
    config: Path = typer.Argument(..., exists=True, dir_okay=False),
    output: Path = typer.Argument(...),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g"),
):
    """Train the NER pipeline from a config; model-best and model-last land in OUTPUT."""
    from spacy.cli._util import parse_config_overrides

    from ..files.problems import InputError
    from ..pipeline.backbone import BackboneError
    from ..training.train import train

    overrides = parse_config_overrides(ctx.args)
    try:
        train(config, output, overrides=overrides, gpu_id=gpu_id)
    except (InputError, BackboneError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Trained: {output}/model-best and {output}/model-last")
