"""Convert BIO files into a DocBin corpus (see `tech-ner convert --help`)."""

import typer

from tech_ner.commands.convert import convert_command

if __name__ == "__main__":
    typer.run(convert_command)
