"""The workflow's convert step (see `tech-ner prepare --help`)."""

import typer

from tech_ner.commands.prepare import prepare_command

if __name__ == "__main__":
    typer.run(prepare_command)
