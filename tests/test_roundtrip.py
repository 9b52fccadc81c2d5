"""BIO -> DocBin -> BIO is identical for well-formed IOB2 input (hypothesis properties)."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tech_ner.corpus.convert import convert
from tech_ner.corpus.export import export_iob, split_corpus
from tech_ner.corpus.sentences import ReadOptions

WORD = st.text(alphabet=string.ascii_letters + string.digits + "+#.-_/()'\u00e9\u4e2d", min_size=1, max_size=8).filter(
    lambda w: w not in ("-DOCSTART-",)
)
LABEL = st.sampled_from(["TECH", "LIB", "Language", "m1"])


@st.composite
def iob2_sentence(draw):
    n = draw(st.integers(1, 12))
    words = draw(st.lists(WORD, min_size=n, max_size=n))
    tags, i = [], 0
    while i < n:
        if draw(st.booleans()):
            tags.append("O")
            i += 1
            continue
        label = draw(LABEL)
        length = draw(st.integers(1, n - i))
        tags += ["B-" + label] + ["I-" + label] * (length - 1)
        i += length
    return list(zip(words, tags))


def render(sents, sep="\t"):
    return "".join("".join(f"{w}{sep}{t}\n" for w, t in s) + "\n" for s in sents)


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(sents=st.lists(iob2_sentence(), min_size=1, max_size=8), n_sents=st.integers(1, 4))
def test_two_column_round_trip_is_identical(tmp_path_factory, sents, n_sents):
    tmp = tmp_path_factory.mktemp("rt")
    src = tmp / "in.tsv"
    src.write_text(render(sents), encoding="utf-8")
    stats = convert([src], tmp / "c.spacy", n_sents=n_sents, strict=True, read_options=ReadOptions(format="two_column"))
    assert stats.problems.total == 0
    export_iob([tmp / "c.spacy"], tmp / "out.tsv")
    assert (tmp / "out.tsv").read_bytes() == src.read_bytes()


@SETTINGS
@given(docs=st.lists(st.lists(iob2_sentence(), min_size=1, max_size=3), min_size=1, max_size=4))
def test_conll_round_trip_keeps_documents(tmp_path_factory, docs):
    tmp = tmp_path_factory.mktemp("rt")
    text = "".join(
        "-DOCSTART- -X- -X- O\n\n" + "".join("".join(f"{w} -X- -X- {t}\n" for w, t in s) + "\n" for s in d)
        for d in docs
    )
    src = tmp / "in.conll"
    src.write_text(text, encoding="utf-8")
    convert([src], tmp / "c.spacy", strict=True, read_options=ReadOptions(format="conll2003"))
    export_iob([tmp / "c.spacy"], tmp / "out.conll", fmt="conll2003")
    assert (tmp / "out.conll").read_text(encoding="utf-8") == text


@SETTINGS
@given(sents=st.lists(iob2_sentence(), min_size=1, max_size=10))
def test_entities_in_equal_entities_out(tmp_path_factory, sents):
    tmp = tmp_path_factory.mktemp("rt")
    src = tmp / "in.tsv"
    src.write_text(render(sents, sep=" "), encoding="utf-8")
    stats = convert([src], tmp / "c.spacy", n_sents=3)
    n_ents = sum(t.startswith("B-") for s in sents for _, t in s)
    assert sum(stats.entities_in.values()) == sum(stats.entities_out.values()) == n_ents
    assert stats.tokens_out == sum(len(s) for s in sents)


def test_split_is_seeded_and_complete(tmp_path):
    src = tmp_path / "in.tsv"
    src.write_text("".join(f"w{i}\tB-TECH\n\n" for i in range(20)), encoding="utf-8")
    convert([src], tmp_path / "all.spacy", n_sents=1)
    a = split_corpus([tmp_path / "all.spacy"], tmp_path / "a", seed=3)
    b = split_corpus([tmp_path / "all.spacy"], tmp_path / "b", seed=3)
    assert a == b == {"train": 16, "dev": 2, "test": 2}
    for name in ("train", "dev", "test"):
        assert (tmp_path / "a" / f"{name}.spacy").read_bytes() == (tmp_path / "b" / f"{name}.spacy").read_bytes()
    export_iob([tmp_path / "a"], tmp_path / "all.tsv")
    words = sorted(l.split("\t")[0] for l in (tmp_path / "all.tsv").read_text().splitlines() if l)
    assert words == sorted(f"w{i}" for i in range(20))
