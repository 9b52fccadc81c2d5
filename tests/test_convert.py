"""Every BIO shape in, every bad input named: tech_ner.corpus.convert and the readers."""

import json

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from tech_ner.commands.cli import app
from tech_ner.corpus.convert import convert
from tech_ner.corpus.labels import LabelMap, build_label_map
from tech_ner.files.problems import InputError
from tech_ner.corpus.readers import detect_format
from tech_ner.corpus.sentences import ReadOptions

TWO_COL = "We\tO\nuse\tO\nC++\tB-TECH\nand\tO\nNode.js\tB-TECH\n\nRust\tB-TECH\n2021\tI-TECH\nships\tO\n\n"


def load(path):
    nlp = spacy.blank("en")
    return list(DocBin().from_disk(path).get_docs(nlp.vocab))


def ents(docs):
    return [(e.text, e.label_) for d in docs for e in d.ents]


def run(write, tmp_path, name, content, **kw):
    src = write(name, content)
    out = tmp_path / "out.spacy"
    opts = kw.pop("read_options", ReadOptions())
    stats = convert([src], out, read_options=opts, **kw)
    return stats, load(out)


@pytest.mark.parametrize(
    "name,content,fmt",
    [
        ("a.tsv", TWO_COL, "two_column"),
        ("a.txt", TWO_COL.replace("\t", " "), "two_column"),
        (
            "a.conll",
            "-DOCSTART- -X- -X- O\n\nWe PRP B-NP O\nuse VBP B-VP O\nC++ NN B-NP B-TECH\nand CC O O\nNode.js NNP B-NP B-TECH\n\nRust NNP B-NP B-TECH\n2021 CD I-NP I-TECH\nships VBZ B-VP O\n\n",
            "conll2003",
        ),
        (
            "a.iob",
            "We -X- _ O\nuse -X- _ O\nC++ -X- _ B-TECH\nand -X- _ O\nNode.js -X- _ B-TECH\n\nRust -X- _ B-TECH\n2021 -X- _ I-TECH\nships -X- _ O\n",
            "x_column",
        ),
        (
            "a.txt",
            "We\tO\tWe\tO\nuse\tO\tuse\tO\nC++\tB-TECH\tC++\tO\nand\tO\tand\tO\nNode.js\tB-TECH\tNode.js\tO\n\t\nRust\tB-TECH\tRust\tO\n2021\tI-TECH\t2021\tO\nships\tO\tships\tO\n\t\n",
            "stackoverflow",
        ),
    ],
)
def test_column_formats(write, tmp_path, name, content, fmt):
    src = write(name, content)
    assert detect_format(src) == fmt
    stats, docs = run(write, tmp_path, name, content)
    assert ents(docs) == [("C++", "TECH"), ("Node.js", "TECH"), ("Rust 2021", "TECH")]
    assert stats.sentences_out == 2 and stats.tokens_out == 8
    assert [len(list(d.sents)) for d in docs] == [2]
    assert stats.problems.total == 0


def test_csv_annotated_corpus_shape_cp1252_crlf(write, tmp_path):
    text = 'Sentence #,Word,POS,Tag\r\nSentence: 1,Caf\u00e9,NN,O\r\n,runs,VBZ,O\r\n,"Python",NNP,B-tech\r\n,.,.,O\r\nSentence: 2,"3D",NN,B-tech\r\n,printing,NN,I-tech\r\n'
    stats, docs = run(write, tmp_path, "ner.csv", text.encode("cp1252"), read_options=ReadOptions(encoding="cp1252"))
    assert ents(docs) == [("Python", "tech"), ("3D printing", "tech")]
    assert docs[0][0].text == "Caf\u00e9"
    assert stats.read.formats[str(tmp_path / "ner.csv")] == "csv (cp1252)"
    assert stats.sentences_out == 2
    # without --encoding, the row that is not UTF-8 skips its sentence (named), never the file (no mojibake)
    stats, docs = run(write, tmp_path, "ner.csv", text.encode("cp1252"))
    assert ents(docs) == [("3D printing", "tech")]
    assert [str(p) for p in stats.problems.examples][0].startswith(f"{tmp_path / 'ner.csv'}:2: not valid UTF-8")


def test_csv_utf8_lf(write, tmp_path):
    text = 'Sentence #,Word,POS,Tag\nSentence: 1,We,PRP,O\n,love,VBP,O\n,"C,",NN,O\n,Go,NNP,B-TECH\n'
    stats, docs = run(write, tmp_path, "ner.csv", text)
    assert [t.text for t in docs[0]] == ["We", "love", "C,", "Go"]
    assert ents(docs) == [("Go", "TECH")]


def test_jsonl_strings_and_ids(write, tmp_path):
    lines = [
        {"id": 0, "tokens": ["I", "use", "PyTorch"], "ner_tags": [0, 0, 1]},
        {"id": 1, "tokens": ["Lithium-ion", "battery", "packs"], "ner_tags": [1, 2, 0]},
    ]
    content = "\n".join(json.dumps(l) for l in lines) + "\n"
    stats, docs = run(
        write, tmp_path, "a.jsonl", content, read_options=ReadOptions(tag_names=["O", "B-TECH", "I-TECH"])
    )
    assert ents(docs) == [("PyTorch", "TECH"), ("Lithium-ion battery", "TECH")]
    content = json.dumps({"words": ["Rust", "rocks"], "ner": ["B-TECH", "O"]}) + "\n"
    stats, docs = run(write, tmp_path, "b.jsonl", content)
    assert ents(docs) == [("Rust", "TECH")]


def test_jsonl_integer_ids_need_names(write, tmp_path):
    src = write("a.jsonl", json.dumps({"tokens": ["a"], "ner_tags": [0]}) + "\n")
    with pytest.raises(InputError, match=r"a\.jsonl:1: .*--tag-names"):
        convert([src], tmp_path / "o.spacy")


def test_folder_and_several_files_combine(write, tmp_path):
    write("d/one.tsv", TWO_COL)
    write("d/sub/two.tsv", "Java\tB-TECH\nisland\tO\n\n")
    stats = convert([tmp_path / "d"], tmp_path / "o.spacy", n_sents=1)
    assert stats.read.files == 2 and stats.sentences_out == 3
    assert len(load(tmp_path / "o.spacy")) == 3


def test_n_sents_groups_and_docstart_breaks(write, tmp_path):
    sents = "".join(f"w{i}\tO\nGo\tB-TECH\n\n" for i in range(7))
    stats, docs = run(write, tmp_path, "a.tsv", sents, n_sents=3)
    assert [len(list(d.sents)) for d in docs] == [3, 3, 1]
    conll = "-DOCSTART- -X- -X- O\n\na X X O\n\nb X X O\n\n-DOCSTART- -X- -X- O\n\nc X X B-TECH\n\n"
    stats, docs = run(write, tmp_path, "b.conll", conll, n_sents=10)
    assert [len(list(d.sents)) for d in docs] == [2, 1]


@pytest.mark.parametrize(
    "tags,expected,repairs",
    [
        (["B-TECH", "I-TECH", "O"], [("a b", "TECH")], 0),
        (["b-tech", "i-tech", "O"], [("a b", "tech")], 0),  # case-insensitive prefixes
        (["O", "I-TECH", "I-TECH"], [("b c", "TECH")], 1),  # I after O (IOB2 ill-formed)
        (["B-LIB", "I-TECH", "O"], [("a", "LIB"), ("b", "TECH")], 1),  # I-X after B-Y
        (["S-TECH", "B-TECH", "E-TECH"], [("a", "TECH"), ("b c", "TECH")], 0),  # BIOES
        (["U-TECH", "B-TECH", "L-TECH"], [("a", "TECH"), ("b c", "TECH")], 0),  # BILOU
    ],
)
def test_tag_schemes_and_repairs(write, tmp_path, tags, expected, repairs):
    content = "".join(f"{w}\t{t}\n" for w, t in zip("abc", tags)) + "\nx\tB-TECH\n\n"
    stats, docs = run(write, tmp_path, "a.tsv", content)
    assert ents(docs)[:-1] == expected
    assert stats.problems.counts.get("i_start", 0) == repairs


def test_iob1_file_is_not_counted_as_repairs(write, tmp_path):
    content = "a\tI-TECH\nb\tI-TECH\nc\tB-TECH\nd\tO\n\ne\tI-LIB\n\n"
    stats, docs = run(write, tmp_path, "a.tsv", content)
    assert ents(docs) == [("a b", "TECH"), ("c", "TECH"), ("e", "LIB")]
    assert stats.problems.total == 0
    assert list(stats.schemes.values()) == ["IOB1"]


def test_bioes_unclosed_entity_is_repaired(write, tmp_path):
    stats, docs = run(write, tmp_path, "a.tsv", "a\tB-TECH\nb\tI-TECH\nc\tO\nd\tS-TECH\n\n")
    assert ents(docs) == [("a b", "TECH"), ("d", "TECH")]
    assert stats.problems.counts["bioes_unclosed"] == 1


def test_label_map_collapses_and_drops(write, tmp_path):
    content = "a\tB-technology\nb\tB-AI\nc\tB-m1\nd\tB-PER\n\n"
    lmap = LabelMap([("technology", "TECH"), ("AI", "TECH"), ("m?", "TECH")], drop_unmapped=True)
    stats, docs = run(write, tmp_path, "a.tsv", content, label_map=lmap)
    assert ents(docs) == [("a", "TECH"), ("b", "TECH"), ("c", "TECH")]
    assert stats.dropped_entities == {"PER": 1}
    assert stats.entities_out == {"TECH": 3}


def test_label_map_file_formats(write, tmp_path):
    write("m.json", json.dumps({"Library": "TECH", "Version": None}))
    write("m.txt", "# comment\nLibrary TECH\nVersion=O\n")
    for name in ("m.json", "m.txt"):
        lmap = build_label_map([], tmp_path / name)
        assert lmap.map("Library") == "TECH" and lmap.map("Version") is None and lmap.map("Other") == "Other"


def test_adjacent_entities_stay_apart_after_mapping(write, tmp_path):
    lmap = LabelMap([("*", "TECH")])
    stats, docs = run(write, tmp_path, "a.tsv", "a\tB-Application\nb\tB-Library\nc\tI-Library\n\n", label_map=lmap)
    assert ents(docs) == [("a", "TECH"), ("b c", "TECH")]


def test_join_attaches_a_version_to_the_entity_it_follows(write, tmp_path):
    # GUIDELINES.md 4.1: a version attached to a name is inside the span; one that stands alone is O
    content = (
        "Python\tB-Language\n3.12\tB-Version\nand\tO\nthen\tO\n2.0\tB-Version\n\n"
        "jQuery\tB-Library\n1.9\tB-Version\n.1\tI-Version\n\n"
    )
    lmap = LabelMap([("Language", "TECH"), ("Library", "TECH")], drop_unmapped=True)
    stats, docs = run(write, tmp_path, "a.tsv", content, label_map=lmap, join=["Version"])
    assert ents(docs) == [("Python 3.12", "TECH"), ("jQuery 1.9 .1", "TECH")]
    assert stats.joined_entities == {"Version": 2} and stats.dropped_entities == {"Version": 1}
    assert "joined 2 Version entities" in "\n".join(stats.notes())
    # without --join the same version is dropped by the map, and the name keeps its own span
    stats, docs = run(write, tmp_path, "a.tsv", content, label_map=lmap)
    assert ents(docs) == [("Python", "TECH"), ("jQuery", "TECH")] and stats.dropped_entities == {"Version": 3}


def test_so_tech_preset_joins_versions(write, tmp_path):
    src = write(
        "so.txt", "Python\tB-Language\tPython\tO\n3\tB-Version\t3\tO\non\tO\ton\tO\nMac\tB-Operating_System\tMac\tO\n\n"
    )
    out = tmp_path / "so.spacy"
    result = CliRunner().invoke(app, ["convert", str(src), "-o", str(out), "-f", "stackoverflow", "--so-tech"])
    assert result.exit_code == 0, result.output
    assert ents(load(out)) == [("Python 3", "TECH"), ("Mac", "TECH")]
    assert "joined 1 Version entities" in result.output


# ---- bad input: every one gets a message that names file and line ----

BAD = [
    ("empty.tsv", b"", r"empty\.tsv: file is empty"),
    ("blank.tsv", b"\n\n  \n\t\n", r"blank\.tsv: file holds only blank lines"),
    ("notag.tsv", b"a\tO\nb\n\n", r"notag\.tsv:2: line has no tag column"),
    ("prefix.tsv", b"a\tO\nb\tX-TECH\n\n", r"prefix\.tsv:2: tag 'X-TECH' has the unknown prefix 'X-'"),
    ("emptytag.tsv", b"a\tO\nb\t\n\n", r"emptytag\.tsv:2: empty tag for token 'b'"),
    ("bom.tsv", b"\xef\xbb\xbfa\tO\n\n", r"bom\.tsv:1: file starts with a UTF-8 byte-order mark"),
    ("latin.tsv", b"a\tO\ncaf\xe9\tO\n\n", r"latin\.tsv:2: not valid UTF-8 at character 4 of the line \(byte 0xE9\)"),
    ("spaces.tsv", b"a\tO\nNew York\tB-LOC\n\n", r"spaces\.tsv:2: token 'New York' contains spaces"),
    ("cols.txt", b"a O\nb c O\n\n", r"cols\.txt:2: line has 3 columns, expected 2"),
    ("nolabel.tsv", b"a\tB-\n\n", r"nolabel\.tsv:1: tag 'B-' is not O"),
    ("ill.tsv", b"a\tB-TECH\n\nb\tO\nc\tI-TECH\n\n", r"ill\.tsv:4: 'I-TECH' follows 'O'"),
]


@pytest.mark.parametrize("name,content,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_strict_names_file_line_and_writes_nothing(write, tmp_path, name, content, message):
    src = write(name, content)
    out = tmp_path / "out.spacy"
    with pytest.raises(InputError, match=message):
        convert([src], out, strict=True)
    assert not out.exists()
    assert list(tmp_path.glob(".out*")) == []  # no temp file left behind
    result = CliRunner().invoke(app, ["convert", str(src), "-o", str(out), "--strict"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("name,content,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_default_repairs_or_skips_and_counts(write, tmp_path, name, content, message):
    src = write(name, content)
    good = write("good.tsv", "Go\tB-TECH\n\n")
    out = tmp_path / "out.spacy"
    stats = convert([src, good], out)
    assert stats.problems.total >= 1
    assert any(__import__("re").search(message, str(p)) for p in stats.problems.examples)
    stats.check_balance()
    assert out.exists()


def test_default_mode_counts_every_skip(write, tmp_path):
    content = "a\tO\n\nb\n\nc\tX-T\n\nd\tB-TECH\n\n"
    stats, docs = run(write, tmp_path, "a.tsv", content)
    assert stats.read.sentences == 4
    assert stats.sentences_out == 2
    assert stats.read.skipped_sentences + stats.tag_skipped_sentences == 2
    assert stats.problems.counts == {"no_tag_column": 1, "tag": 1}


def test_token_with_spaces_split_keeps_entity(write, tmp_path):
    stats, docs = run(write, tmp_path, "a.tsv", "in\tO\nVisual Studio Code\tB-TECH\nnow\tO\n\n")
    assert ents(docs) == [("Visual Studio Code", "TECH")]
    assert stats.split_tokens == 2 and stats.tokens_out == 5 and stats.read.tokens == 3


def test_label_map_that_maps_nothing(write, tmp_path):
    src = write("a.tsv", TWO_COL)
    with pytest.raises(InputError, match=r"label map maps nothing: none of its labels \(Library\) occur.*TECH"):
        convert([src], tmp_path / "o.spacy", label_map=LabelMap([("Library", "TECH")]))
    assert not (tmp_path / "o.spacy").exists()


def test_only_empty_inputs_is_an_error(write, tmp_path):
    src = write("e.tsv", b"")
    with pytest.raises(InputError, match="no sentences to write"):
        convert([src], tmp_path / "o.spacy")


def test_cli_prints_table_and_repairs(write, tmp_path):
    src = write("a.tsv", "a\tO\nb\tI-TECH\n\nc\tB-X\n\n")
    result = CliRunner().invoke(app, ["convert", str(src), "-o", str(tmp_path / "o.spacy"), "--map", "X=TECH"])
    assert result.exit_code == 0, result.output
    assert "a.tsv:2: 'I-TECH' follows 'O'; it begins a new TECH entity; repaired" in result.output
    assert "entities TECH" in result.output and "i_start: 1" in result.output


def test_folder_output_is_sharded(write, tmp_path):
    content = "".join(f"w{i}\tO\nGo\tB-TECH\n\n" for i in range(50))
    src = write("a.tsv", content)
    stats = convert([src], tmp_path / "shards", n_sents=5, shard_tokens=20)
    assert len(stats.shards) == 5
    docs = [d for p in sorted((tmp_path / "shards").glob("*.spacy")) for d in load(p)]
    assert sum(len(d) for d in docs) == 100


@pytest.mark.parametrize(
    "tag_names, label_map, message",
    [
        (b"\xff\xfe not text", b"\xff\xfe not text", "is not valid UTF-8"),
        (b"[" * 200_000, b'{"a": ' * 200_000, "is JSON nested too deeply"),
        (b"[1, 2", b'{"a": "b"', "is not valid JSON"),
    ],
    ids=["not-utf8", "nested", "invalid"],
)
def test_tag_names_and_label_map_files_share_their_error_handling(tmp_path, tag_names, label_map, message):
    from tech_ner.corpus.labels import load_label_map_file
    from tech_ner.corpus.tabular import load_tag_names

    path = tmp_path / "user.json"
    path.write_bytes(label_map)
    with pytest.raises(InputError, match=message):
        load_label_map_file(path)
    path.write_bytes(tag_names)
    with pytest.raises(InputError, match=message):
        load_tag_names(str(path))
