"""Outputs never remove what the tool did not write, and respect the umask."""

import json
import os
import stat

import pytest
from typer.testing import CliRunner

from tech_ner.files.atomic import OUTPUT_MANIFEST, atomic_path, is_own_temporary, manifest_files, refusal
from tech_ner.commands.cli import app
from tech_ner.files.problems import InputError

BIO = "Python\tB-TECH\nis\tO\nfun\tO\n\nRust\tB-TECH\ntoo\tO\n\n"


def _convert(*args):
    return CliRunner().invoke(app, ["convert", *map(str, args)])


def _one_line_error(result):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize(
    "layout, out_name",
    [
        ({"out/README.txt": "keep"}, "out"),  # a folder the user keeps notes in
        ({"data/train.tsv": BIO, "data/dev.tsv": BIO}, "data"),  # the input's own folder
        ({"data/train.tsv": BIO}, "data/train.tsv"),  # the input file itself, as a folder output
    ],
)
def test_folder_output_never_removes_foreign_files(write, tmp_path, layout, out_name):
    paths = {name: write(name, content) for name, content in layout.items()}
    src = write("in/data.tsv", BIO)
    out = tmp_path / out_name
    message = _one_line_error(_convert(src, "-o", out))
    assert out_name.split("/")[-1] in message
    for name, content in layout.items():
        assert paths[name].read_text() == content


def test_folder_output_replaces_only_its_own_earlier_output(write, tmp_path):
    src = write("data.tsv", BIO * 4)
    out = tmp_path / "out"
    assert _convert(src, "-o", out, "--shard-tokens", "5", "-n", "1").exit_code == 0
    first = sorted(p.name for p in out.iterdir())
    assert OUTPUT_MANIFEST in first and len(first) > 2
    assert _convert(src, "-o", out, "--shard-tokens", "1000").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MANIFEST, "part-00000.spacy"]
    (out / "notes.txt").write_text("mine")
    _one_line_error(_convert(src, "-o", out))
    assert (out / "notes.txt").read_text() == "mine" and (out / "part-00000.spacy").exists()


def test_empty_existing_folder_is_a_fine_output(write, tmp_path):
    (tmp_path / "out").mkdir()
    assert _convert(write("d.tsv", BIO), "-o", tmp_path / "out").exit_code == 0
    assert (tmp_path / "out" / "part-00000.spacy").exists()


def test_file_output_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / "x.spacy").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        with atomic_path(tmp_path / "x.spacy"):
            pass


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_respect_the_umask(write, tmp_path, umask):
    src = write("d.tsv", BIO)
    old = os.umask(umask)
    try:
        assert _convert(src, "-o", tmp_path / "one.spacy").exit_code == 0
        assert _convert(src, "-o", tmp_path / "shards").exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "one.spacy").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "shards").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "shards" / "part-00000.spacy").stat().st_mode) == 0o666 & ~umask


def test_a_manifest_cannot_point_outside_its_folder(tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.txt").write_text("keep")
    (tmp_path / "keep.txt").write_text("keep")
    out = tmp_path / "out"
    with atomic_path(out, is_dir=True) as tmp:
        (tmp / "model").mkdir()
        (tmp / "model" / "weights.bin").write_text("old")
    manifest = json.loads((out / OUTPUT_MANIFEST).read_text())
    manifest["files"] += ["../precious", "../keep.txt", "..", "."]
    (out / OUTPUT_MANIFEST).write_text(json.dumps(manifest))
    with atomic_path(out, is_dir=True) as tmp:  # replaces the folder it wrote, subfolder and all
        (tmp / "model").mkdir()
        (tmp / "model" / "weights.bin").write_text("new")
    assert (out / "model" / "weights.bin").read_text() == "new"
    assert (outside / "data.txt").read_text() == "keep" and (tmp_path / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "out", "precious"]


def test_refusal_is_one_rule_on_names_for_any_filesystem():
    manifest = {"files": ["part-00000.spacy", "model"]}
    assert refusal([], None) is None
    assert refusal([OUTPUT_MANIFEST, "part-00000.spacy", "model"], manifest) is None
    assert refusal(["notes.txt", "part-00000.spacy"], manifest) == (
        "holds files this tool did not write (notes.txt); give a new or empty folder for the output "
        "(nothing was written)"
    )
    foreign = ["e.txt", "d.txt", "c.txt", "b.txt", "a.txt"]
    message = refusal(foreign, None, what="the shards")
    assert message is not None
    assert "(a.txt, b.txt, c.txt and 2 more); give a new or empty folder for the shards" in message
    # a manifest of another shape, or names outside the folder, make nothing the tool's own
    for odd in ({"files": "notes.txt"}, {"files": {"notes.txt": 1}}, {"files": None}, ["notes.txt"], "notes.txt"):
        assert manifest_files(odd) == [] and refusal(["notes.txt"], odd) is not None
    assert manifest_files({"files": ["../x", "a/b", "a\\b", "..", ".", "", 3, "ok"]}) == ["ok"]
    # a temporary file beside one of the tool's files counts as its own only where the caller says so
    temporary = ".part-00000.spacy.k2j4.tmp"
    assert is_own_temporary(temporary, ["part-00000.spacy"]) and not is_own_temporary(temporary, ["model"])
    assert refusal([temporary], manifest) is not None
    assert refusal([temporary, f".{OUTPUT_MANIFEST}.ab12.tmp"], manifest, temporaries=True) is None
    assert refusal([".notes.txt.ab12.tmp"], manifest, temporaries=True) is not None
