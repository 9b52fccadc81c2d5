"""Hostile input to `tech-ner convert`, `split`, `to-bio` and `extract`, driven through the CLI.

Every case asserts what a user sees: the exit code, one line naming the file and line, no traceback, and
that counts balance (rows in = rows out + error rows; sentences in = written + skipped).
"""

import json

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from typer.testing import CliRunner

from tech_ner.apps import records as extract_records, rows as extract_rows
from tech_ner.commands.cli import app
from tech_ner.files.textfile import csv_records, decode_lines

NESTED = "[" * 100_000
LONG = "x" * 3_000_000


def cli(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_one_line_error(res, *needles):
    """Exit 1, no traceback, and the last stderr line is the one error line, naming what it should."""
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), res.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    assert len(lines[-1]) < 400


@pytest.fixture(scope="module")
def blank_model(tmp_path_factory):
    """A blank pipeline: extract's row accounting needs no trained model."""
    path = tmp_path_factory.mktemp("blank") / "model"
    spacy.blank("en").to_disk(path)
    return path


def spacy_file(path, n_docs=3):
    nlp = spacy.blank("en")
    db = DocBin()
    for i in range(n_docs):
        db.add(Doc(nlp.vocab, words=["Go", str(i)], ents=["B-TECH", "O"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    db.to_disk(path)
    return path


def load(path):
    return list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))


# ---------------------------------------------------------------- extract: error rows, never a crash

EXTRACT = [
    (
        "surrogate_text.jsonl",
        b'{"id":1,"text":"Python \\ud800 Rust"}\n{"id":2,"text":"ok"}\n',
        [(1, "surrogate_text.jsonl:1: field 'text'"), (2, None)],
    ),
    (
        "surrogate_id.jsonl",
        b'{"id":"a\\udc80","text":"ok"}\n{"id":2,"text":"ok"}\n',
        [(1, "surrogate_id.jsonl:1: field 'id'"), (2, None)],
    ),
    (
        "surrogate_other.jsonl",
        b'{"id":3,"text":"ok","meta":{"a":["\\udfff"]}}\n',
        [(3, "surrogate_other.jsonl:1: field 'meta.a[0]'")],
    ),
    ("surrogate_key.jsonl", b'{"id":4,"text":"ok","\\ud800":1}\n', [(4, "surrogate_key.jsonl:1: a field name")]),
    (
        "nul.jsonl",
        b'{"id":5,"text":"a\\u0000b"}\n{"id":6,"text":"ok"}\n',
        [(5, "nul.jsonl:1: field 'text'"), (6, None)],
    ),
    ("nested.jsonl", (NESTED + "\n" + '{"id":7,"text":"ok"}\n').encode(), [(1, "nested.jsonl:1: "), (7, None)]),
    (
        "bad_byte.jsonl",
        b'{"id":8,"text":"caf\xe9"}\n{"id":9,"text":"na\xc3\xafve"}\n',
        [(1, "bad_byte.jsonl:1: not valid UTF-8"), (9, None)],
    ),
    ("utf16.jsonl", '{"id":1,"text":"ok"}\n{"id":2,"text":"ok"}\n'.encode("utf-16"), [(1, None), (2, None)]),
    ("cr_only.jsonl", b'{"id":1,"text":"a"}\r{"id":2,"text":"b"}\r', [(1, None), (2, None)]),
    (
        "stray_quote.csv",
        b'id,text\n1,"abc\n2,def\n3,ghi\n4,"jkl"\n5,Python\n',
        [(1, "stray_quote.csv:2: "), ("2", None), ("3", None), ("4", None), ("5", None)],
    ),
    ("unclosed.csv", b'id,text\n1,ok\n2,"never closed\n3,ok\n', [("1", None), (2, "unclosed.csv:3: "), ("3", None)]),
    ("multiline_ok.csv", b'id,text\n1,"para one\n\npara, two"\n2,ok\n', [("1", None), ("2", None)]),
    ("bad_byte.csv", b"id,text\n1,caf\xe9\n2,na\xc3\xafve\n", [("1", "bad_byte.csv:2: not valid UTF-8"), ("2", None)]),
    ("nul.csv", b"id,text\n1,a\x00b\n2,ok\n", [("1", "nul.csv:2: "), ("2", None)]),
    ("bad_byte.txt", b"fine\n\xff\n", [("bad_byte.txt", "bad_byte.txt:2: not valid UTF-8")]),
    ("nul.txt", b"fine\nst\x00ill\n", [("nul.txt", "nul.txt:2: ")]),
    ("utf16.txt", "caf\u00e9 Python".encode("utf-16"), [("utf16.txt", None)]),
]


@pytest.mark.parametrize("name,content,expected", EXTRACT, ids=[c[0] for c in EXTRACT])
def test_extract_bad_text_becomes_error_rows(blank_model, write, tmp_path, name, content, expected):
    src = write(name, content)
    out = tmp_path / "out.jsonl"
    res = cli("extract", src, "-o", out, "-m", blank_model, "--no-progress")
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(expected)  # rows in = rows out (error rows included)
    for row, (doc_id, error) in zip(rows, expected):
        doc_id = name if doc_id == name else doc_id
        assert row["id"] == (str(src) if doc_id == name else doc_id), row
        if error is None:
            assert row["error"] is None, row
        else:
            assert row["error"] and row["error"].startswith(f"{tmp_path}/{error}"), row
            assert len(row["error"]) < 400
    n_errors = sum(e is not None for _, e in expected)
    assert f"({n_errors} error rows" in res.stdout


@pytest.mark.parametrize(
    "content,error",
    [
        (b"ok\n\xffx\nfine\n", "<stdin>:2: not valid UTF-8"),
        (b"ok\nnul\x00here\nfine\n", "<stdin>:2: "),
    ],
    ids=["bad_byte", "nul"],
)
def test_extract_stdin_bad_lines(blank_model, tmp_path, content, error):
    out = tmp_path / "out.jsonl"
    res = cli("extract", "-", "-o", out, "-m", blank_model, "--no-progress", input=content)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["error"] is not None for r in rows] == [False, True, False]
    assert rows[1]["error"].startswith(error)


def test_extract_strict_surrogate_is_one_line(blank_model, write, tmp_path):
    src = write("s.jsonl", b'{"id":1,"text":"ok"}\n{"id":2,"text":"Python \\ud800 Rust"}\n')
    res = cli("extract", src, "-o", tmp_path / "o.csv", "-m", blank_model, "--strict", "--no-progress")
    assert_one_line_error(res, "s.jsonl:2:", "'text'")


def test_extract_stdin_text_stream_with_escaped_bytes():
    import io

    records = list(
        extract_records.iter_records(
            [extract_records.Source("stdin", None)], stdin=io.StringIO("ok\nbad \udcff byte\nfine\n")
        )
    )
    assert [r.error is not None for r in records] == [False, True, False]
    assert records[1].error.startswith("<stdin>:2: ") and "U+DCFF" in records[1].error


def test_extract_file_name_not_utf8(blank_model, tmp_path):
    import os

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Python", encoding="utf-8")
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "wb") as f:
        f.write(b"Rust")
    out = tmp_path / "out.jsonl"
    res = cli("extract", folder, "-o", out, "-m", blank_model, "--no-progress")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a.txt", "caf\\xe9.txt"] and all(r["error"] is None for r in rows)


def test_extract_resume_passes_an_invalid_document(blank_model, write, tmp_path):
    src = write("s.jsonl", b'{"id":1,"text":"ok"}\n{"id":2,"text":"Python \\ud800 Rust"}\n{"id":3,"text":"ok"}\n')
    out = tmp_path / "out.jsonl"
    extract_rows.partial_path(out).write_text('{"id": 1, "terms": [], "spans": [], "error": null}\n', encoding="utf-8")
    res = cli("extract", src, "-o", out, "-m", blank_model, "--no-progress", "--resume")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3] and rows[1]["error"].endswith(
        "s.jsonl:2: field 'text' holds a lone surrogate U+D800 at character 8 (no UTF-8 text can hold one)"
    )


def test_extract_csv_rows_decoded_per_row(write):
    src = write("t.csv", b"id,text\n1,caf\xe9\n2,na\xc3\xafve \xe2\x9c\x93\n")
    records = list(extract_records.iter_records(extract_records.resolve_inputs([src])))
    assert records[0].error is not None and records[1].text == "na\u00efve \u2713"


def test_extract_long_line_is_echoed_short(blank_model, write, tmp_path):
    src = write("long.jsonl", '{"id":1,"' + LONG + '":1}\n{"id":2,"text":"' + LONG[:10] + '"}\n')
    out = tmp_path / "out.jsonl"
    res = cli("extract", src, "-o", out, "-m", blank_model, "--no-progress")
    assert res.exit_code == 0, res.output
    assert len(res.stderr) < 1000
    assert len(out.read_text(encoding="utf-8").splitlines()[0]) < 1000


# ---------------------------------------------------------------- the CSV record rule, unit level


@pytest.mark.parametrize(
    "content,expected",
    [
        # (first line, last line, fields or None for an error record)
        (
            'id,text\n1,"abc\n2,def\n3,ghi\n4,"jkl"\n5,Python\n',
            [
                (1, 1, ["id", "text"]),
                (2, 2, None),
                (3, 3, ["2", "def"]),
                (4, 4, ["3", "ghi"]),
                (5, 5, ["4", "jkl"]),
                (6, 6, ["5", "Python"]),
            ],
        ),
        ('id,text\n1,"a\nb"\n2,c\n', [(1, 1, ["id", "text"]), (2, 3, ["1", "a\nb"]), (4, 4, ["2", "c"])]),
        # closes cleanly, but with three fields where the header has two: the quote was stray
        ('id,text\n1,"a\n2,b",x\n', [(1, 1, ["id", "text"]), (2, 2, None), (3, 3, ["2", 'b"', "x"])]),
        ("a,b\r1,2\r", [(1, 1, ["a", "b"]), (2, 2, ["1", "2"])]),
    ],
    ids=["stray_quote", "multiline", "stray_closing", "cr_only"],
)
def test_csv_records_rule(content, expected):
    import io

    records = [r for r in csv_records(decode_lines(io.BytesIO(content.encode()))) if r.fields or r.error]
    got = [(r.line, r.end_line, r.fields if r.error is None else None) for r in records]
    assert got == expected


# ---------------------------------------------------------------- convert: counted skips, problems printed


def convert_ok(write, tmp_path, name, content, *args):
    src = write(name, content)
    out = tmp_path / "out.spacy"
    res = cli("convert", src, "-o", out, *args)
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return res, load(out)


CONVERT = [
    (
        "surrogate.jsonl",
        b'{"tokens":["Python","\\ud800"],"ner_tags":["B-TECH","O"]}\n{"tokens":["Go"],"ner_tags":["B-TECH"]}\n',
        (),
        1,
        "surrogate.jsonl:1: tokens[1]",
    ),
    (
        "nul.jsonl",
        b'{"tokens":["Py\\u0000"],"ner_tags":["O"]}\n{"tokens":["Go"],"ner_tags":["B-TECH"]}\n',
        (),
        1,
        "nul.jsonl:1: tokens[0]",
    ),
    (
        "surrogate_tag.jsonl",
        b'{"tokens":["a"],"ner_tags":["B-\\ud800"]}\n{"tokens":["Go"],"ner_tags":["B-TECH"]}\n',
        (),
        1,
        "surrogate_tag.jsonl:1: ner_tags[0]",
    ),
    ("nested.jsonl", (NESTED + "\n" + '{"tokens":["Go"],"ner_tags":["B-TECH"]}\n').encode(), (), 1, "nested.jsonl:1: "),
    ("nul.tsv", b"Py\x00thon\tB-TECH\n\nGo\tB-TECH\n", (), 1, "nul.tsv:1: "),
    (
        "bad_byte.csv",
        b"Sentence #,Word,POS,Tag\nSentence: 1,caf\xe9,NN,O\nSentence: 2,na\xc3\xafve,JJ,O\n",
        (),
        1,
        "bad_byte.csv:2: ",
    ),
    ("stray.csv", b'Sentence #,Word,POS,Tag\nSentence: 1,"abc,NN,O\nSentence: 2,def,NN,O\n', (), 1, "stray.csv:2: "),
    ("mixed.tsv", b"Python\tB-TECH\nis O\n", (), 1, None),
    ("bom16.tsv", "Python\tB-TECH\nis\tO\n\nGo\tB-TECH\n".encode("utf-16"), (), 2, None),
    ("bom32.tsv", "Python\tB-TECH\nis\tO\n\nGo\tB-TECH\n".encode("utf-32"), (), 2, None),
    ("enc16.tsv", "Python\tB-TECH\nis\tO\n\nGo\tB-TECH\n".encode("utf-16"), ("--encoding", "utf-16"), 2, None),
    ("enc16le.tsv", "Python\tB-TECH\nis\tO\n".encode("utf-16-le"), ("--encoding", "utf-16-le"), 1, None),
    (
        "cp1252.csv",
        "Sentence #,Word,POS,Tag\nSentence: 1,Caf\u00e9,NN,O\n".encode("cp1252"),
        ("--encoding", "cp1252"),
        1,
        None,
    ),
    ("cr_only.tsv", b"Python\tB-TECH\ris\tO\r\rGo\tB-TECH\r", (), 2, None),
    ("cr_only.csv", b"Sentence #,Word,POS,Tag\rSentence: 1,Go,NN,B-TECH\rSentence: 2,Rust,NN,B-TECH\r", (), 2, None),
]


@pytest.mark.parametrize("name,content,args,n_out,warning", CONVERT, ids=[c[0] for c in CONVERT])
def test_convert_hostile_lines_are_counted_skips(write, tmp_path, name, content, args, n_out, warning):
    res, docs = convert_ok(write, tmp_path, name, content, *args)
    assert sum(len(list(d.sents)) for d in docs) == n_out
    if warning is None:
        assert "problems repaired or skipped" in res.stdout and "(0 problems" in res.stdout, res.output
    else:
        warnings = [l for l in res.stderr.splitlines() if l.startswith("warning: ")]
        assert any(f"{tmp_path}/{warning}" in l for l in warnings), res.stderr
        assert "skipped 1 sentences" in res.stdout


def test_convert_csv_is_not_mojibake(write, tmp_path):
    res, docs = convert_ok(
        write, tmp_path, "t.csv", b"Sentence #,Word,POS,Tag\nSentence: 1,caf\xe9,NN,O\nSentence: 2,na\xc3\xafve,JJ,O\n"
    )
    assert [t.text for d in docs for t in d] == ["na\u00efve"]


@pytest.mark.parametrize(
    "name,content,args,warning",
    [
        ("garbage.bin", bytes(range(256)) * 8, (), "garbage.bin"),
        ("utf16_nobom.tsv", "Python\tB-TECH\n".encode("utf-16-le"), (), "utf16_nobom.tsv"),
        ("badtag.tsv", b"a\tX-TECH\n", (), "badtag.tsv"),
        ("cr_bad.tsv", b"Python\tX-TECH\ris O\r", (), "cr_bad.tsv:1:"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.endswith((".bin", ".tsv")) else "",
)
def test_convert_problems_reach_the_user_before_the_error(write, tmp_path, name, content, args, warning):
    src = write(name, content)
    res = cli("convert", src, "-o", tmp_path / "x.spacy", *args)
    assert_one_line_error(res)
    warnings = [l for l in res.stderr.splitlines() if l.startswith("warning: ")]
    if warning not in res.stderr.splitlines()[-1]:  # the error does not name the file: the warnings above do
        assert "no sentences" in res.stderr.splitlines()[-1]
        assert warnings and all(warning in l for l in warnings), res.stderr
    assert all(len(l) < 400 for l in res.stderr.splitlines())


def test_convert_long_line_is_echoed_short(write, tmp_path):
    res, docs = convert_ok(write, tmp_path, "long.tsv", "a\tO\n\n" + LONG + "\n\n" + "b " + LONG + " O\n")
    assert len(res.stderr) < 1000 and "\u2026" in res.stderr


# ---------------------------------------------------------------- one-line errors, every command


def _paths(tmp_path):
    tsv = tmp_path / "in.tsv"
    tsv.write_text("Go\tB-TECH\n", encoding="utf-8")
    return tsv, spacy_file(tmp_path / "in.spacy")


ONE_LINE = [
    ("convert -o /dev/null", lambda t, s, p: ["convert", t, "-o", "/dev/null/x.spacy"], ["/dev/null"]),
    ("convert -o .", lambda t, s, p: ["convert", t, "-o", "."], ["."]),
    ("convert -o input", lambda t, s, p: ["convert", t, "-o", t], ["in.tsv", "input"]),
    ("convert -o dir with input", lambda t, s, p: ["convert", t, "-o", p], ["{dir}"]),
    ("convert --encoding bogus", lambda t, s, p: ["convert", t, "-o", p / "x.spacy", "--encoding", "bogus"], ["bogus"]),
    (
        "convert --tag-names bad json",
        lambda t, s, p: ["convert", t, "-o", p / "x.spacy", "--tag-names", _tags(p, "[1,")],
        ["names.json"],
    ),
    (
        "convert --tag-names nested",
        lambda t, s, p: ["convert", t, "-o", p / "x.spacy", "--tag-names", _tags(p, NESTED)],
        ["names.json"],
    ),
    (
        "convert --tag-names binary",
        lambda t, s, p: ["convert", t, "-o", p / "x.spacy", "--tag-names", _tags(p, b"\xff\xfe\x00")],
        ["names.json"],
    ),
    ("split --ratios nan", lambda t, s, p: ["split", s, "-o", p / "sp", "--ratios", "nan,0.5,0.5"], ["--ratios"]),
    ("split --ratios inf", lambda t, s, p: ["split", s, "-o", p / "sp", "--ratios", "inf,-inf,1"], ["--ratios"]),
    (
        "split -o input's folder as train",
        lambda t, s, p: ["split", _as(s, p / "d" / "train.spacy"), "-o", p / "d"],
        ["train.spacy"],
    ),
    ("split -o /dev/null", lambda t, s, p: ["split", s, "-o", "/dev/null/sp"], ["/dev/null"]),
    ("to-bio -o input", lambda t, s, p: ["to-bio", s, "-o", s], ["in.spacy"]),
    ("to-bio -o /dev/null", lambda t, s, p: ["to-bio", s, "-o", "/dev/null/x.txt"], ["/dev/null"]),
    ("to-bio -o a folder", lambda t, s, p: ["to-bio", s, "-o", p], ["{dir}"]),
    ("to-bio not a docbin", lambda t, s, p: ["to-bio", t, "-o", p / "o.txt"], ["in.tsv"]),
    ("extract -o input", lambda t, s, p: ["extract", _jsonl(p), "-o", _jsonl(p), "-m", p / "nomodel"], ["in.jsonl"]),
    (
        "extract -o /dev/null",
        lambda t, s, p: ["extract", _jsonl(p), "-o", "/dev/null/x.jsonl", "-m", p / "nomodel"],
        ["/dev/null"],
    ),
]


def _tags(folder, content):
    path = folder / "names.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _as(src, dest):
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(src.read_bytes())
    return dest


def _jsonl(folder):
    path = folder / "in.jsonl"
    path.write_text('{"id":1,"text":"ok"}\n', encoding="utf-8")
    return path


@pytest.mark.parametrize("case,argv,needles", ONE_LINE, ids=[c[0] for c in ONE_LINE])
def test_one_line_errors(tmp_path, monkeypatch, case, argv, needles):
    monkeypatch.chdir(tmp_path)
    tsv, sp = _paths(tmp_path)
    argv = argv(tsv, sp, tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    res = cli(*argv)
    assert_one_line_error(res, *(n.replace("{dir}", str(tmp_path)) for n in needles))
    assert tsv.read_text(encoding="utf-8") == "Go\tB-TECH\n"  # an input is never touched
    assert len(load(sp)) == 3
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, nothing removed


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("command", ["convert", "to-bio", "extract"])
def test_read_only_output_folder(tmp_path, command):
    tsv, sp = _paths(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        argv = {
            "convert": ["convert", tsv, "-o", ro / "x.spacy"],
            "to-bio": ["to-bio", sp, "-o", ro / "x.txt"],
            "extract": ["extract", _jsonl(tmp_path), "-o", ro / "x.jsonl", "-m", tmp_path / "nomodel"],
        }[command]
        assert_one_line_error(cli(*argv), str(ro))
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("content", [NESTED, '{"a":' * 100_000, LONG], ids=["nested_list", "nested_object", "long"])
def test_hostile_label_map_is_one_line(tmp_path, content):
    tsv, _ = _paths(tmp_path)
    lmap = tmp_path / "map.json"
    lmap.write_text(content, encoding="utf-8")
    assert_one_line_error(cli("convert", tsv, "-o", tmp_path / "x.spacy", "--label-map", lmap), "map.json")


def test_decode_lines_keeps_each_line_end():
    import io

    from tech_ner.files.textfile import CHUNK

    lines = list(decode_lines(io.BytesIO(b"a\r\nb\rc\nd")))
    assert [(line.number, line.text, line.end) for line in lines] == [
        (1, "a", "\r\n"),
        (2, "b", "\r"),
        (3, "c", "\n"),
        (4, "d", ""),
    ]
    # a \r\n cut between two reads is one line end
    data = b"x" * (4 + CHUNK - 1) + b"\r\ny"
    assert [(line.number, line.end) for line in decode_lines(io.BytesIO(data))] == [(1, "\r\n"), (2, "")]
