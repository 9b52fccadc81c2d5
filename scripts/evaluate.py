"""Evaluate a trained pipeline on gold splits (see `tech-ner evaluate --help`)."""

import typer

from tech_ner.commands.evaluate import evaluate_command

if __name__ == "__main__":
    typer.run(evaluate_command)
