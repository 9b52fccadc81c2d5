"""Choose a trained pipeline's outside_bias on a held-out set (see `tech-ner calibrate --help`)."""

import typer

from tech_ner.commands.calibrate import calibrate_command

if __name__ == "__main__":
    typer.run(calibrate_command)
