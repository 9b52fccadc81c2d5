"""Train the NER pipeline (see `tech-ner train --help`)."""

import typer

from tech_ner.commands.train import CONTEXT_SETTINGS, train_command

if __name__ == "__main__":
    app = typer.Typer(add_completion=False)
    app.command(context_settings=CONTEXT_SETTINGS)(train_command)
    app()
