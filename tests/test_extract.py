"""`tech-ner extract`: every input shape, one row per document in order, error rows and --strict,
--resume after an interruption, long documents, and the int8/bf16 CPU path (on the tiny pipeline)."""

import csv
import inspect
import json
import warnings

import pytest
import spacy
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import tech_ner.pipeline  # noqa: F401
from tech_ner.apps import extract as ex
from tech_ner.apps import inference, records as extract_records, rows as extract_rows
from tech_ner.files.problems import InputError
from tech_ner.commands.extract import extract_command
from tech_ner.pipeline.precision import (
    ATTR,
    apply_precision,
    current_precision,
    find_transformers,
    resolve_precision,
)

app = typer.Typer()
app.command()(extract_command)

SENTENCES = [
    "We rewrote the parser in Rust and kept the Python bindings.",
    "The PostgreSQL cluster now runs on Kubernetes.",
    "Nobody on the team liked the new office.",
    "Install Node.js before you run the React build.",
    "Our phones ship with Android 14 and Wi-Fi 7.",
]


def run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def read_rows(path):
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            return [
                {
                    "id": r["id"],
                    "terms": json.loads(r["terms"]),
                    "spans": json.loads(r["spans"]),
                    "error": r["error"] or None,
                }
                for r in csv.DictReader(f)
            ]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def jsonl(write, name, n, start=0):
    lines = [
        json.dumps({"id": f"d{i}", "text": f"{SENTENCES[i % len(SENTENCES)]} Item {i}."})
        for i in range(start, start + n)
    ]
    return write(name, "\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def nlp(tiny_pipeline):
    return inference.load_pipeline(tiny_pipeline)


# ---------------------------------------------------------------- input shapes and output rows


def test_every_input_shape_in_order(tiny_pipeline, write, tmp_path):
    txt = write("one.txt", SENTENCES[0])
    write("folder/b.txt", SENTENCES[1])
    write("folder/a/c.txt", SENTENCES[2])
    write("folder/skip.md", "not a document")
    lines = write(
        "docs.jsonl",
        json.dumps({"id": "j1", "text": SENTENCES[3]}) + "\n\n" + json.dumps({"text": SENTENCES[4]}) + "\n",
    )
    table = write("docs.csv", 'text,id\n"Hello, Rust",c1\nno id here,\n')
    out = tmp_path / "out.jsonl"
    res = run(
        txt, tmp_path / "folder", lines, table, "-", "-o", out, "-m", tiny_pipeline, input="from stdin\n\nC++ too\n"
    )
    assert res.exit_code == 0, res.output
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [str(txt), "a/c.txt", "b.txt", "j1", 3, "c1", 2, 1, 2, 3]
    assert "Wrote 10 rows (0 error rows)" in res.stdout
    assert "words/s" in res.stdout and "docs/s" in res.stderr  # summary line and progress bar
    texts = [
        SENTENCES[0],
        SENTENCES[2],
        SENTENCES[1],
        SENTENCES[3],
        SENTENCES[4],
        "Hello, Rust",
        "no id here",
        "from stdin",
        "",
        "C++ too",
    ]
    for row, text in zip(rows, texts):
        assert set(row) == {"id", "terms", "spans", "error"} and row["error"] is None
        for span in row["spans"]:
            assert set(span) == {"start", "end", "label", "text"}
            assert text[span["start"] : span["end"]] == span["text"]
        assert len(row["terms"]) == len({" ".join(t.split()).casefold() for t in row["terms"]})
    assert not extract_rows.partial_path(out).exists()


def test_csv_output_rows(tiny_pipeline, write, tmp_path):
    src = jsonl(write, "in.jsonl", 4)
    out = tmp_path / "out.csv"
    res = run(src, "-o", out, "-m", tiny_pipeline, "--no-progress", "--text-field", "text", "--id-field", "id")
    assert res.exit_code == 0, res.output
    with open(out, encoding="utf-8", newline="") as f:
        raw = list(csv.reader(f))
    assert raw[0] == ["id", "terms", "spans", "error"]
    assert [r[0] for r in raw[1:]] == ["d0", "d1", "d2", "d3"]
    assert all(r[3] == "" for r in raw[1:])
    # terms are what doc._.tech_terms gives for the same text
    pipeline = spacy.load(tiny_pipeline)
    for r, i in zip(raw[1:], range(4)):
        doc = pipeline(f"{SENTENCES[i]} Item {i}.")
        assert json.loads(r[1]) == [t.text for t in doc._.tech_terms]
        assert json.loads(r[2]) == [
            {"start": e.start_char, "end": e.end_char, "label": e.label_, "text": e.text} for e in doc.ents
        ]


@pytest.mark.parametrize("n_process", [1, 2])
def test_one_row_per_document_in_order(tiny_pipeline, write, tmp_path, n_process):
    src = jsonl(write, "in.jsonl", 23)
    out = tmp_path / "out.jsonl"
    res = run(src, "-o", out, "-m", tiny_pipeline, "--n-process", n_process, "--batch-size", 4, "--no-progress")
    assert res.exit_code == 0, res.output
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [f"d{i}" for i in range(23)]
    single = list(
        ex.extract_rows(
            inference.load_pipeline(tiny_pipeline),
            [extract_records.Record(i, f"d{i}", f"{SENTENCES[i % 5]} Item {i}.") for i in range(23)],
        )
    )
    assert rows == single


def test_memory_zones_keep_order_and_errors(nlp):
    records = [
        extract_records.Record(i, i, SENTENCES[i % 5]) if i % 4 else extract_records.Record(i, i, error=f"x:{i}: bad")
        for i in range(17)
    ]
    rows = list(ex.extract_rows(nlp, records, batch_size=3, zone_docs=5))
    assert [r["id"] for r in rows] == list(range(17))
    assert [r["error"] is not None for r in rows] == [i % 4 == 0 for i in range(17)]
    assert all(r["terms"] == [] and r["spans"] == [] for r in rows if r["error"])
    assert "extract_doc_cleaner" in nlp.pipe_names
    doc = next(nlp.pipe(["Python is here."]))
    assert doc._.trf_data is None  # the transformer output is dropped once the NER used it


# ---------------------------------------------------------------- malformed input


def malformed_inputs(write):
    table = write("bad.csv", 'id,text\n1,We use Python.\n2,too,many,fields\n3,"fine, really"\n')
    lines = write(
        "bad.jsonl",
        '{"id": "a", "text": "Rust"}\n{"id": "b", "text": \n{"id": "c", "body": "x"}\n'
        '{"id": "d", "text": 5}\n[1, 2]\n{"id": "e", "text": "ok"}\n',
    )
    return table, lines


def test_malformed_lines_become_error_rows(tiny_pipeline, write, tmp_path):
    table, lines = malformed_inputs(write)
    out = tmp_path / "out.jsonl"
    res = run(table, lines, "-o", out, "-m", tiny_pipeline, "--no-progress")
    assert res.exit_code == 0, res.output
    rows = read_rows(out)
    assert [r["id"] for r in rows] == ["1", "2", "3", "a", 2, "c", "d", 5, "e"]
    errors = {r["id"]: r["error"] for r in rows if r["error"]}
    assert errors["2"] == f"{table}:3: malformed CSV row: expected 2 fields (id, text), found 4"
    assert errors[2].startswith(f"{lines}:2: invalid JSON")
    assert errors["c"] == f"{lines}:3: no 'text' field (fields: id, body): name the text field with --text-field"
    assert errors["d"] == f"{lines}:4: field 'text' is int, not a string"
    assert errors[5] == f"{lines}:5: expected a JSON object, found list"
    assert all(r["terms"] == [] and r["spans"] == [] for r in rows if r["error"])
    assert "5 error rows" in res.stdout and f"{table}:3: malformed CSV row" in res.stderr


@pytest.mark.parametrize("which,location", [("csv", "bad.csv:3:"), ("jsonl", "bad.jsonl:2:")])
def test_strict_exits_1_without_output(tiny_pipeline, write, tmp_path, which, location):
    table, lines = malformed_inputs(write)
    out = tmp_path / "out.csv"
    res = run(table if which == "csv" else lines, "-o", out, "-m", tiny_pipeline, "--strict", "--no-progress")
    assert res.exit_code == 1
    assert location in res.stderr and "strict mode: no output was written" in res.stderr
    assert "Traceback" not in res.output
    assert not out.exists() and not extract_rows.partial_path(out).exists()


def test_invalid_utf8_csv_row(nlp, write, tmp_path):
    src = write("enc.csv", b"text\nfine\nbad \xff byte\nfine again\n")
    rows = read_rows_of(nlp, [src], tmp_path / "o.jsonl")
    assert [r["error"] for r in rows] == [
        None,
        f"{src}:3: not valid UTF-8 at character 5 of the line (byte 0xFF)",
        None,
    ]


def read_rows_of(nlp, inputs, out, **kw):
    ex.extract(nlp, inputs, out, **kw)
    return read_rows(out)


@pytest.mark.parametrize(
    "files,message",
    [
        (
            {"t.csv": "id,body\n1,x\n"},
            "t.csv:1: no 'text' column in the header (columns: id, body): name the text column with --text-field",
        ),
        ({"t.csv": ""}, "t.csv: empty file: expected a header row with a 'text' field"),
        ({"t.jsonl": "\n  \n"}, "t.jsonl: empty file: expected one JSON object per line"),
        ({"t.docx": "x"}, "t.docx: unknown input type '.docx': expected .txt, .jsonl or .csv files"),
        ({"empty/x.md": "x"}, "empty: no .txt files in this folder"),
        ({}, "missing.txt: no such file or folder"),
    ],
)
def test_bad_inputs_have_clear_messages(tmp_path, write, files, message):
    for name, content in files.items():
        write(name, content)
    target = tmp_path / (next(iter(files)).split("/")[0] if files else "missing.txt")
    res = run(target, "-o", tmp_path / "out.jsonl", "-m", tmp_path / "no-model-needed")
    assert res.exit_code == 1
    assert message in res.stderr, res.stderr
    assert "Traceback" not in res.output


def test_bad_output_suffix_and_model(tiny_pipeline, write, tmp_path):
    src = jsonl(write, "in.jsonl", 2)
    res = run(src, "-o", tmp_path / "out.xlsx", "-m", tiny_pipeline)
    assert res.exit_code == 1 and "unknown output type '.xlsx': use .csv or .jsonl" in res.stderr
    res = run(src, "-o", tmp_path / "out.csv", "-m", tmp_path / "nope")
    assert res.exit_code == 1 and "cannot load the pipeline" in res.stderr
    res = run(src, "-o", tmp_path / "out.csv", "-m", tiny_pipeline, "--precision", "fp8")
    assert res.exit_code == 1 and "--precision 'fp8'" in res.stderr


# ---------------------------------------------------------------- resume


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_resume_after_interruption(tiny_pipeline, write, tmp_path, monkeypatch, suffix):
    src = jsonl(write, "in.jsonl", 12)
    table, _ = malformed_inputs(write)  # error rows must resume too
    full = tmp_path / f"full{suffix}"
    assert run(src, table, "-o", full, "-m", tiny_pipeline, "--no-progress").exit_code == 0
    out = tmp_path / f"out{suffix}"
    writer = extract_rows.WRITERS[suffix[1:]]
    original = writer.write
    written = []

    def write_then_stop(self, row):
        if len(written) == 7:
            raise KeyboardInterrupt
        original(self, row)
        written.append(row)

    monkeypatch.setattr(writer, "write", write_then_stop)
    res = run(src, table, "-o", out, "-m", tiny_pipeline, "--no-progress")
    assert res.exit_code == 130 and "--resume" in res.stderr
    partial = extract_rows.partial_path(out)
    assert not out.exists() and len(partial.read_text().splitlines()) == 7 + (suffix == ".csv")  # + header
    monkeypatch.setattr(writer, "write", original)
    res = run(src, table, "-o", out, "-m", tiny_pipeline, "--no-progress", "--resume")
    assert res.exit_code == 0, res.output
    assert "7 rows resumed" in res.stdout
    assert out.read_bytes() == full.read_bytes()
    assert not partial.exists()


def test_resume_drops_a_torn_last_line(nlp, write, tmp_path):
    src = jsonl(write, "in.jsonl", 9)
    full = tmp_path / "full.jsonl"
    ex.extract(nlp, [src], full)
    out = tmp_path / "out.jsonl"
    partial = extract_rows.partial_path(out)
    data = full.read_bytes()
    cut = [i for i, b in enumerate(data) if b == ord("\n")][3] + 15  # four rows and part of the fifth
    partial.write_bytes(data[:cut])
    stats = ex.extract(nlp, [src], out, resume=True)
    assert (stats.resumed, stats.rows) == (4, 5)
    assert out.read_bytes() == data


def test_resume_checks_the_partial_matches(nlp, write, tmp_path):
    src = jsonl(write, "in.jsonl", 5)
    other = jsonl(write, "other.jsonl", 5, start=100)
    out = tmp_path / "out.jsonl"
    extract_rows.partial_path(out).write_text("".join(json.dumps({"id": f"d{i}"}) + "\n" for i in range(100, 103)))
    with pytest.raises(InputError, match="does not match the inputs: its row 3 has id 'd102'"):
        ex.extract(nlp, [src], out, resume=True)
    with pytest.raises(InputError, match="has 3 rows but the inputs have only 2 documents"):
        ex.extract(nlp, [write("two.jsonl", '{"text": "a"}\n{"text": "b"}\n')], out, resume=True)
    stats = ex.extract(nlp, [other], out, resume=True)
    assert (stats.resumed, stats.rows) == (3, 2)
    # without --resume an old partial is overwritten
    extract_rows.partial_path(out).write_text("junk\n")
    assert ex.extract(nlp, [src], out).rows == 5


# ---------------------------------------------------------------- long documents


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab .\n!"), max_size=300), st.integers(1, 40))
def test_split_text_covers_the_text(text, max_chars):
    pieces = inference.split_text(text, max_chars)
    assert "".join(text[s:e] for s, e in pieces) == text
    assert all(e - s <= max_chars for s, e in pieces)
    assert all(pieces[i][1] == pieces[i + 1][0] for i in range(len(pieces) - 1))


def test_split_text_prefers_paragraphs_then_sentences():
    text = "First para. Still first.\n\nSecond para here. More words follow it."
    assert inference.split_text(text, 40)[0] == (0, 26)  # after the blank line
    assert inference.split_text("One two. Three four five six seven", 20)[0] == (0, 9)  # after the sentence end
    assert inference.split_text("aaaa bbbb cccc dddd", 12)[0] == (0, 10)  # after whitespace
    assert inference.split_text("x" * 25, 10) == [(0, 10), (10, 20), (20, 25)]  # one huge word


def test_text_beyond_max_length_is_split_and_merged(nlp):
    paragraphs = [" ".join(SENTENCES[(i + j) % 5] for j in range(3)) for i in range(8)]
    text = "\n\n".join(paragraphs)
    old = nlp.max_length
    nlp.max_length = 300
    try:
        with pytest.warns(ex.LongDocumentWarning, match=r"longer than nlp.max_length \(300\); processed in \d+ pieces"):
            rows = list(
                ex.extract_rows(
                    nlp, [extract_records.Record(0, "long", text), extract_records.Record(1, "short", SENTENCES[0])]
                )
            )
    finally:
        nlp.max_length = old
    assert [r["id"] for r in rows] == ["long", "short"]
    spans = rows[0]["spans"]
    assert spans and all(text[s["start"] : s["end"]] == s["text"] for s in spans)
    # the same entities as the pieces processed one by one, shifted by each piece's start
    expected = []
    for start, end in inference.split_text(text, 300):
        doc = nlp(text[start:end])
        expected += [
            {"start": e.start_char + start, "end": e.end_char + start, "label": e.label_, "text": e.text}
            for e in doc.ents
        ]
    assert spans == expected
    last_piece_start = inference.split_text(text, 300)[-1][0]
    assert max(s["start"] for s in spans) >= last_piece_start > 0  # entities all the way through


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab .!?\n\r\t\u00a0\u2029\u201d"), max_size=400), st.integers(1, 60))
def test_split_text_cuts_inside_a_word_only_when_it_must(text, max_chars):
    pieces = inference.split_text(text, max_chars)
    assert "".join(text[s:e] for s, e in pieces) == text
    assert all(0 < e - s <= max_chars for s, e in pieces) or text == ""
    for s, e in pieces[:-1]:
        if not text[e - 1].isspace() and not text[e].isspace():  # a cut inside a word:
            # only a piece that is all one "word" from its first quarter on
            assert e - s == max_chars and not any(c.isspace() for c in text[s + max_chars // 4 : e])


def rule_pipeline(seen=None):
    """A pipeline whose entities do not depend on context (an entity ruler), so a split text must give the very
    row its whole gives; `seen` collects the length of every text the pipeline is given."""
    import spacy
    from spacy.language import Language

    nlp = spacy.blank("en")
    if seen is not None:
        name = f"record_lengths_{id(seen)}"
        Language.component(name, func=lambda doc: seen.append(len(doc.text)) or doc)
        nlp.add_pipe(name)
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(
        [{"label": "TECH", "pattern": p} for p in ("Python", "python", "Rust", "PostgreSQL", "Kubernetes")]
        + [{"label": "TECH", "pattern": [{"LOWER": "node.js"}]}, {"label": "TECH", "pattern": "React"}]
    )
    nlp.add_pipe("tech_terms", config={"labels": ["TECH"]})
    return inference.add_doc_cleaner(nlp)


def long_text(paragraphs=30):
    return "\n\n".join(
        " ".join(SENTENCES[(i + j) % 5] for j in range(3)) + (" python" if i % 7 == 3 else "")
        for i in range(paragraphs)
    )


def test_long_text_is_cut_into_bounded_pieces_and_merged_into_one_row():
    text = long_text()
    seen = []
    nlp = rule_pipeline(seen)
    whole = list(ex.extract_rows(rule_pipeline(), [extract_records.Record(0, "long", text)], max_piece_chars=len(text)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ex.LongDocumentWarning)  # below nlp.max_length: cutting is routine, no warning
        rows = list(
            ex.extract_rows(
                nlp,
                [extract_records.Record(0, "long", text), extract_records.Record(1, "short", SENTENCES[1])],
                max_piece_chars=200,
            )
        )
    assert len(seen) > len(text) // 200 and max(seen[:-1]) <= 200  # the pipeline never sees more than one piece
    assert [r["id"] for r in rows] == ["long", "short"]
    assert rows[0] == whole[0]  # one row, the same as the text in one piece: same terms, spans, offsets
    spans = rows[0]["spans"]
    assert all(text[s["start"] : s["end"]] == s["text"] for s in spans)
    assert spans == sorted(spans, key=lambda s: (s["start"], s["end"]))
    # terms deduplicated across pieces, first appearance first ("Python" before "python": one term)
    assert rows[0]["terms"] == ["Rust", "Python", "PostgreSQL", "Kubernetes", "Node.js", "React"]


def test_long_text_spans_are_the_pieces_spans_shifted(nlp):
    text = long_text(12)
    rows = list(ex.extract_rows(nlp, [extract_records.Record(0, "long", text)], max_piece_chars=250))
    expected = []
    for start, end in inference.split_text(text, 250):
        expected += [
            {"start": e.start_char + start, "end": e.end_char + start, "label": e.label_, "text": e.text}
            for e in nlp(text[start:end]).ents
        ]
    assert rows[0]["spans"] == expected
    assert all(text[s["start"] : s["end"]] == s["text"] for s in expected)
    assert (
        max(s["start"] for s in expected) >= inference.split_text(text, 250)[-1][0] > 0
    )  # entities all the way through
    keys = list(dict.fromkeys(" ".join(s["text"].split()).casefold() for s in expected))
    assert [" ".join(t.split()).casefold() for t in rows[0]["terms"]] == keys


def test_freed_memory_is_handed_back_after_every_batch_of_pieces(monkeypatch):
    trims = []
    monkeypatch.setattr(ex, "_malloc_trim", lambda: lambda: trims.append(1))
    text = long_text(12)
    pieces = len(inference.split_text(text, 100))
    rows = list(
        ex.extract_rows(rule_pipeline(), [extract_records.Record(0, 0, text)], batch_size=2, max_piece_chars=100)
    )
    assert len(rows) == 1
    # one document but many batches: trimming after every batch_size rows would trim once, at the end
    assert len(trims) >= pieces // 2


def test_max_piece_chars_option(tiny_pipeline, write, tmp_path):
    text = long_text(6)
    src = write("long.txt", text)
    out = tmp_path / "o.jsonl"
    res = run(src, "-o", out, "-m", tiny_pipeline, "--max-piece-chars", 200, "--no-progress")
    assert res.exit_code == 0, res.output
    row = read_rows(out)[0]
    assert row["id"] == str(src) and all(text[s["start"] : s["end"]] == s["text"] for s in row["spans"])
    res = run(src, "-o", out, "-m", tiny_pipeline, "--max-piece-chars", 0, "--no-progress")
    assert res.exit_code != 0 and "--max-piece-chars" in res.output
    with pytest.raises(ValueError, match="max_piece_chars must be >= 1"):
        list(ex.extract_rows(rule_pipeline(), [extract_records.Record(0, 0, "x")], max_piece_chars=0))
    # the command's default is the library's (written out there so that the command's module does not load spaCy)
    option = inspect.signature(extract_command).parameters["max_piece_chars"].default  # a typer OptionInfo
    assert option.default == ex.DEFAULT_MAX_PIECE_CHARS


def test_long_text_via_cli_warns(tiny_pipeline, write, tmp_path):
    text = " ".join(SENTENCES * 6)
    src = write("long.txt", text)
    out = tmp_path / "o.jsonl"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run(src, "-o", out, "-m", tiny_pipeline, "--max-length", 250, "--no-progress")
    assert res.exit_code == 0, res.output
    assert (
        any(issubclass(w.category, ex.LongDocumentWarning) for w in caught)
        or "longer than nlp.max_length" in res.stderr
    )
    row = read_rows(out)[0]
    assert all(text[s["start"] : s["end"]] == s["text"] for s in row["spans"])


def test_more_than_512_wordpieces_are_all_encoded(tiny_pipeline):
    pipeline = spacy.load(tiny_pipeline)
    words = ("kubernetes postgresql tensorflow " * 400).split()  # ~3,600 wordpieces, no sentence ends
    doc = pipeline(" ".join(words) + ". " + " ".join(SENTENCES * 20))
    trf = doc._.trf_data
    assert trf.wordpieces.input_ids.shape[1] <= 512  # windows, never one truncated sequence
    assert len(doc) > 1500
    assert all(n > 0 for n in trf.align.lengths), "every token gets wordpieces, to the end of the document"


# ---------------------------------------------------------------- precision


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_precision_gives_a_working_pipeline(tiny_pipeline, precision):
    import torch

    text = " ".join(SENTENCES)
    reference = spacy.load(tiny_pipeline)(text)
    fast = spacy.load(tiny_pipeline)
    assert apply_precision(fast, precision) == precision
    assert current_precision(fast) == precision
    assert apply_precision(fast, precision) == precision  # idempotent
    docs = list(fast.pipe([text, SENTENCES[1]]))
    assert [t.text for t in docs[0]] == [t.text for t in reference]
    assert all(e.label_ == "TECH" for e in docs[0].ents)
    hf = find_transformers(fast)[0][1].model.layers[0].shims[0]._model
    with pytest.raises(ValueError, match=f"runs in {precision} for inference and cannot be saved"):
        fast.to_bytes()
    if precision == "int8":
        assert any("quantized" in type(m).__module__ for m in hf.modules())
    else:
        assert docs[0]._.trf_data.model_output.last_hidden_state.dtype.name == "float32"
        assert hf(**{"input_ids": torch.tensor([[101, 2000, 102]])}).last_hidden_state.dtype == torch.float32
    with pytest.raises(ValueError, match="already runs in"):
        apply_precision(fast, "int8" if precision == "bf16" else "bf16")


def test_resolve_precision():
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("auto", device="cuda") == "fp32"
    assert resolve_precision("auto") in ("int8", "bf16", "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16")


def test_cpu_precision_component_applies_on_load(tiny_pipeline, tmp_path):
    nlp = spacy.load(tiny_pipeline)
    nlp.add_pipe("cpu_precision", config={"precision": "int8"})
    assert current_precision(nlp) == "fp32"  # adding it changes nothing until the pipeline is loaded
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert loaded.pipe_names[-1] == "cpu_precision" and current_precision(loaded) == "int8"
    assert loaded("Python and Rust.").text == "Python and Rust."
    fp32 = spacy.load(tmp_path / "p", config={"components": {"cpu_precision": {"precision": "fp32"}}})
    assert current_precision(fp32) == "fp32"
    # an explicit --precision replaces the component's setting
    assert current_precision(inference.load_pipeline(tmp_path / "p", precision="bf16")) == "bf16"
    assert ATTR not in find_transformers(inference.load_pipeline(tmp_path / "p", precision="fp32"))[0][1].model.attrs


def test_extract_with_precision(tiny_pipeline, write, tmp_path):
    src = jsonl(write, "in.jsonl", 3)
    out = tmp_path / "o.jsonl"
    res = run(src, "-o", out, "-m", tiny_pipeline, "--precision", "int8", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "int8)" in res.stdout and len(read_rows(out)) == 3


def test_malloc_trim_is_callable_and_harmless():
    trim = ex._malloc_trim()
    assert trim() is None


def test_malloc_trim_returns_none_when_nothing_was_freed(monkeypatch):
    import ctypes

    class FakeLibc:
        def __init__(self, *args, **kwargs):
            self.malloc_trim = self

        def __call__(self, pad):
            self.calls = getattr(self, "calls", 0) + 1
            return 0  # glibc: no memory was released

    fake = FakeLibc()
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: fake)
    trim = ex._malloc_trim()
    assert trim() is None and fake.calls == 1
