"""Package a trained pipeline as an installable wheel and sdist (see `tech-ner package --help`)."""

import typer

from tech_ner.commands.package import package_command

if __name__ == "__main__":
    typer.run(package_command)
