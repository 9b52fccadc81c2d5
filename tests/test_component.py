"""The `tech_terms` component: terms, flags, settings and registration.

Entities are set by hand or by an `entity_ruler`; no model is loaded.
Extensions are global to the process, so every test that changes `labels`,
`attrs` or `min_count` takes fresh attribute names from the `fresh_attrs`
fixture, which removes them afterwards.
"""

import importlib
import itertools
import os
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, Span, Token
from spacy.vocab import Vocab

import tech_ner.pipeline.component  # noqa: F401  (registers the factory, also in nlp.pipe workers)
from tech_ner.pipeline.component import TechTerm, TechTerms, collect_terms, normalize_term

_counter = itertools.count()


@pytest.fixture
def nlp():
    return spacy.blank("en")


@pytest.fixture
def fresh_attrs():
    """fresh_attrs() -> three attribute names not registered yet; removed after the test."""
    made = []

    def _fresh():
        n = next(_counter)
        attrs = (f"t_terms_{n}", f"t_span_{n}", f"t_token_{n}")
        made.append(attrs)
        return attrs

    yield _fresh
    for doc_attr, span_attr, token_attr in made:
        for cls, name in ((Doc, doc_attr), (Span, span_attr), (Token, token_attr)):
            if cls.has_extension(name):
                cls.remove_extension(name)


def set_ents(doc, *marks):
    """set_ents(doc, ("Python", "TECH"), ...): every occurrence of each regex becomes an entity."""
    spans = []
    for pattern, label in marks:
        for m in re.finditer(pattern, doc.text):
            span = doc.char_span(m.start(), m.end(), label=label)
            assert span is not None, f"{pattern!r} does not match token boundaries"
            spans.append(span)
    doc.ents = sorted(spans, key=lambda s: s.start)
    return doc


def ruler_pipeline(**config):
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(
        [
            {"label": "TECH", "pattern": [{"LOWER": "python"}]},
            {"label": "TECH", "pattern": [{"LOWER": "react"}, {"LOWER": "native"}]},
            {"label": "TECH", "pattern": [{"LOWER": "docker"}]},
            {"label": "ORG", "pattern": "Google"},
        ]
    )
    nlp.add_pipe("tech_terms", config=config)
    return nlp


TEXT = "PYTHON and React  Native at Google; python, react native and Docker. Python!"


def test_dedup_case_and_whitespace_in_order_of_first_appearance(nlp):
    nlp.add_pipe("tech_terms")
    doc = set_ents(
        nlp.make_doc(TEXT),
        (r"(?i)python", "TECH"),
        (r"(?i)react\s+native", "TECH"),
        (r"Docker", "TECH"),
        (r"Google", "ORG"),
    )
    doc = nlp(doc)
    terms = doc._.tech_terms
    assert [str(t) for t in terms] == ["PYTHON", "React  Native", "Docker"]  # text of the first mention
    assert [t.key for t in terms] == ["python", "react native", "docker"]
    assert [t.count for t in terms] == [3, 2, 1]
    assert [t.labels for t in terms] == [["TECH"], ["TECH"], ["TECH"]]


def test_offsets_point_at_every_mention(nlp):
    nlp.add_pipe("tech_terms")
    doc = nlp(set_ents(nlp.make_doc(TEXT), (r"(?i)python", "TECH"), (r"(?i)react\s+native", "TECH")))
    python, react = doc._.tech_terms
    assert python.offsets == [(0, 6), (36, 42), (69, 75)]
    assert [doc.text[s:e] for s, e in python.offsets] == ["PYTHON", "python", "Python"]
    assert [doc.text[s:e] for s, e in react.offsets] == ["React  Native", "react native"]


def test_term_object(nlp):
    nlp.add_pipe("tech_terms")
    doc = nlp(set_ents(nlp.make_doc("Rust and rust"), (r"(?i)rust", "TECH")))
    (term,) = doc._.tech_terms
    assert isinstance(term, TechTerm)
    assert str(term) == f"{term}" == "Rust"
    assert term.label == "TECH"
    assert term.to_dict() == {
        "text": "Rust",
        "key": "rust",
        "count": 2,
        "offsets": [[0, 4], [9, 13]],
        "labels": ["TECH"],
    }


def test_other_labels_are_ignored_by_default(nlp):
    nlp.add_pipe("tech_terms")
    doc = nlp(set_ents(nlp.make_doc("Google uses Go"), (r"Google", "ORG"), (r"Go\b", "TECH")))
    assert [str(t) for t in doc._.tech_terms] == ["Go"]
    org, go = doc.ents
    assert (org._.is_tech, go._.is_tech) == (False, True)
    assert [t._.is_tech for t in doc] == [False, False, True]


@pytest.mark.parametrize("labels", [None, []])
def test_no_labels_means_all_labels(nlp, fresh_attrs, labels):
    terms, span_flag, token_flag = attrs = fresh_attrs()
    nlp.add_pipe("tech_terms", config={"labels": labels, "attrs": attrs})
    doc = nlp(set_ents(nlp.make_doc("Google uses Go"), (r"Google", "ORG"), (r"Go\b", "TECH")))
    assert [(str(t), t.labels) for t in doc._.get(terms)] == [("Google", ["ORG"]), ("Go", ["TECH"])]
    assert [e._.get(span_flag) for e in doc.ents] == [True, True]
    assert [t._.get(token_flag) for t in doc] == [True, False, True]


def test_several_labels_and_mixed_labels_of_one_term(nlp, fresh_attrs):
    terms, *_ = attrs = fresh_attrs()
    nlp.add_pipe("tech_terms", config={"labels": ["TECH", "LIB"], "attrs": attrs})
    doc = nlp.make_doc("numpy , NumPy , Paris")
    doc.ents = [Span(doc, 0, 1, "LIB"), Span(doc, 2, 3, "TECH"), Span(doc, 4, 5, "GPE")]
    (term,) = doc._.get(terms)
    assert (term.text, term.count, term.labels, term.label) == ("numpy", 2, ["LIB", "TECH"], "LIB")


def test_renamed_attributes(nlp, fresh_attrs):
    terms, span_flag, token_flag = attrs = fresh_attrs()
    nlp.add_pipe("tech_terms", config={"attrs": list(attrs)})
    doc = nlp(set_ents(nlp.make_doc("I like Kotlin"), (r"Kotlin", "TECH")))
    assert [str(t) for t in doc._.get(terms)] == ["Kotlin"]
    assert doc.ents[0]._.get(span_flag) is True
    assert [t._.get(token_flag) for t in doc] == [False, False, True]
    # the same name may serve the Span and the Token flag (as in the default attrs)
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("tech_terms", config={"attrs": [f"{terms}_x", f"{span_flag}_x", f"{span_flag}_x"]})
    doc = nlp2(set_ents(nlp2.make_doc("Kotlin"), (r"Kotlin", "TECH")))
    assert doc[0]._.get(f"{span_flag}_x") and doc[:1]._.get(f"{span_flag}_x")
    for cls, name in ((Doc, f"{terms}_x"), (Span, f"{span_flag}_x"), (Token, f"{span_flag}_x")):
        cls.remove_extension(name)


def test_min_count(nlp, fresh_attrs):
    terms, span_flag, _ = attrs = fresh_attrs()
    nlp.add_pipe("tech_terms", config={"min_count": 2, "attrs": attrs})
    doc = nlp(set_ents(nlp.make_doc("Go Rust go"), (r"(?i)go", "TECH"), (r"Rust", "TECH")))
    assert [(str(t), t.count) for t in doc._.get(terms)] == [("Go", 2)]
    assert doc.ents[1]._.get(span_flag)  # the flags do not depend on min_count


def test_registration_is_idempotent(nlp):
    nlp.add_pipe("tech_terms")
    nlp.add_pipe("tech_terms", name="tech_terms_again")
    other = spacy.blank("en")
    other.add_pipe("tech_terms", config={"labels": ["TECH"]})
    doc = other(set_ents(other.make_doc("Vue"), (r"Vue", "TECH")))
    assert [str(t) for t in doc._.tech_terms] == ["Vue"]
    assert nlp.pipe_names == ["tech_terms", "tech_terms_again"]


def test_conflicting_definition_raises_and_does_not_overwrite(nlp, fresh_attrs):
    terms, span_flag, token_flag = attrs = fresh_attrs()
    nlp.add_pipe("tech_terms", config={"attrs": attrs})
    before = Doc.get_extension(terms)
    other = spacy.blank("en")
    with pytest.raises(ValueError, match=rf"Doc\._\.{terms} is already registered with a different definition"):
        other.add_pipe("tech_terms", config={"attrs": attrs, "labels": ["LIB"]})
    assert Doc.get_extension(terms) is before


def test_name_taken_by_foreign_extension_raises(nlp, fresh_attrs):
    terms, span_flag, token_flag = fresh_attrs()
    Token.set_extension(token_flag, default=False)
    with pytest.raises(ValueError, match=rf"Token\._\.{token_flag} is already registered"):
        nlp.add_pipe("tech_terms", config={"attrs": [terms, span_flag, token_flag]})
    # checked before registering anything: no half-registered component
    assert not Doc.has_extension(terms) and not Span.has_extension(span_flag)
    assert Token.get_extension(token_flag) == (False, None, None, None)


def test_span_flag_needs_exactly_an_entity(nlp):
    nlp.add_pipe("tech_terms")
    doc = nlp(set_ents(nlp.make_doc("we deploy with Apache Kafka today"), (r"Apache Kafka", "TECH")))
    assert doc.ents[0]._.is_tech
    assert doc[3:5]._.is_tech  # same boundaries as the entity
    assert not doc[3:4]._.is_tech and not doc[2:5]._.is_tech and not doc[0:2]._.is_tech
    assert [t._.is_tech for t in doc] == [False, False, False, True, True, False]


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "no entities here"])
def test_docs_without_entities(nlp, text):
    nlp.add_pipe("tech_terms")
    doc = nlp(text)
    assert doc._.tech_terms == []
    assert not any(t._.is_tech for t in doc)
    assert not doc[:]._.is_tech


def test_whitespace_entity_names_no_term(nlp):
    nlp.add_pipe("tech_terms")
    doc = nlp.make_doc("Go   Go")
    assert [t.text for t in doc] == ["Go", "  ", "Go"]
    doc.ents = [Span(doc, 0, 1, "TECH"), Span(doc, 1, 2, "TECH"), Span(doc, 2, 3, "TECH")]
    doc = nlp(doc)
    assert [(str(t), t.count) for t in doc._.tech_terms] == [("Go", 2)]


def test_normalize_term():
    assert normalize_term("  React \n Native ") == "react native"
    assert normalize_term("STRASSE") == normalize_term("straße")  # casefold, not lower
    assert normalize_term(" \t") == ""


@pytest.mark.parametrize(
    "config, message",
    [
        ({"labels": "TECH"}, "labels must be a list of labels, not a string"),
        ({"labels": ["TECH", " "]}, "labels must be non-empty strings"),
        ({"attrs": ("a", "b")}, "attrs must be three attribute names"),
        ({"attrs": ("a", "b", "not valid")}, "attrs must be three attribute names"),
        ({"min_count": 0}, "min_count must be an integer >= 1"),
    ],
)
def test_bad_settings(nlp, config, message):
    with pytest.raises(ValueError, match=message):
        TechTerms(nlp, **config)


def test_bad_settings_through_the_config(nlp):
    with pytest.raises(ValueError, match="min_count must be an integer >= 1"):
        nlp.add_pipe("tech_terms", config={"min_count": -1})


def test_call_rejects_non_docs(nlp):
    component = nlp.add_pipe("tech_terms")
    with pytest.raises(TypeError, match="expected a spaCy Doc, got str"):
        component("Python")


def test_factory_metadata(nlp):
    nlp.add_pipe("tech_terms")
    meta = nlp.get_pipe_meta("tech_terms")
    assert meta.requires == ["doc.ents"]
    assert "doc._.tech_terms" in meta.assigns
    assert nlp.config["components"]["tech_terms"]["labels"] == ["TECH"]


def test_entity_ruler_pipeline_and_disk_round_trip(tmp_path):
    nlp = ruler_pipeline()
    expected = [t.to_dict() for t in nlp(TEXT)._.tech_terms]
    assert [t["text"] for t in expected] == ["PYTHON", "react native", "Docker"]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.pipe_names == ["entity_ruler", "tech_terms"]
    assert [t.to_dict() for t in loaded(TEXT)._.tech_terms] == expected


def test_values_survive_doc_serialisation():
    nlp = ruler_pipeline()
    doc = nlp(TEXT)
    restored = Doc(nlp.vocab).from_bytes(doc.to_bytes())
    assert [t.to_dict() for t in restored._.tech_terms] == [t.to_dict() for t in doc._.tech_terms]


def test_getters_pickle_for_spawned_workers():
    spacy.blank("en").add_pipe("tech_terms")
    for cls, name in ((Doc, "tech_terms"), (Span, "is_tech"), (Token, "is_tech")):
        getter = cls.get_extension(name)[2]
        assert pickle.loads(pickle.dumps(getter)) == getter


def test_multiprocessing_pipe_matches_single_process():
    nlp = ruler_pipeline()
    texts = [TEXT, "", "Docker, docker, DOCKER", "Google only", "python  and React Native"] * 4

    def summary(docs):
        return [
            ([t.to_dict() for t in d._.tech_terms], [t._.is_tech for t in d], [e._.is_tech for e in d.ents])
            for d in docs
        ]

    single = summary(nlp.pipe(texts, n_process=1))
    multi = summary(nlp.pipe(texts, n_process=2, batch_size=3))
    assert multi == single
    assert single[2][0] == [
        {"text": "Docker", "key": "docker", "count": 3, "offsets": [[0, 6], [8, 14], [16, 22]], "labels": ["TECH"]}
    ]


def _copy_runtime_files(package_dir):
    """What the package step does: the runtime subpackage shipped whole inside the pipeline package."""
    from tech_ner.packaging.runtime import ship_runtime

    package_dir.mkdir(parents=True)
    (package_dir / "meta.json").write_text('{"lang": "en", "name": "copy", "version": "0.0.0"}')
    ship_runtime(package_dir)


def test_a_packaged_copy_of_the_files_reuses_the_registrations(tmp_path, nlp, monkeypatch):
    # an installed pipeline package imports its copy of the runtime next to tech_ner's
    import tech_ner.pipeline  # noqa: F401

    factories = ("tech_terms", "cpu_precision", "bio_ner")
    originals = [spacy.registry.factories.get(f) for f in factories]
    _copy_runtime_files(tmp_path / "en_copy_pkg")
    monkeypatch.syspath_prepend(str(tmp_path))
    copy = importlib.import_module("en_copy_pkg")  # imports every copy: must not raise E004
    assert Path(copy.pipeline.bio_ner.__file__).parent == tmp_path / "en_copy_pkg" / "pipeline"
    assert [spacy.registry.factories.get(f) for f in factories] == originals
    nlp.add_pipe("tech_terms")
    doc = nlp(set_ents(nlp.make_doc("Go"), (r"Go", "TECH")))
    assert [str(t) for t in doc._.tech_terms] == ["Go"]


def test_packaged_copy_and_entry_point_in_one_process(tmp_path):
    # An installed pipeline package imports its copy first; creating a Language then
    # loads the `spacy_factories` entry point, which imports tech_ner.pipeline.component.
    site = tmp_path / "site"
    _copy_runtime_files(site / "en_fake_tech")
    dist = site / "fake_tech_ner-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-tech-ner\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(
        "[spacy_factories]\ntech_terms = tech_ner.pipeline.component:make_tech_terms\n"
        "bio_ner = tech_ner.pipeline.bio_ner:make_bio_ner\ncpu_precision = tech_ner.pipeline.precision:make_cpu_precision\n"
    )
    script = textwrap.dedent("""
        import en_fake_tech, spacy
        from spacy.tokens import Span
        nlp = spacy.blank("en")  # loads the entry point: imports tech_ner.pipeline.component
        import tech_ner.pipeline.component
        nlp.add_pipe("tech_terms")
        spacy.blank("en").add_pipe("bio_ner")
        doc = nlp.make_doc("Go and go")
        doc.ents = [Span(doc, 0, 1, "TECH"), Span(doc, 2, 3, "TECH")]
        print([(str(t), t.count) for t in nlp(doc)._.tech_terms])
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[('Go', 2)]"


# property: terms partition the kept entities, keys unique, in order of first appearance
WORDS = st.sampled_from(["Go", "go", "GO", "Rust", "rust", "Java", "and", ","])


@settings(max_examples=60, deadline=None)
@given(words=st.lists(WORDS, min_size=0, max_size=12), data=st.data())
def test_terms_partition_the_entities(words, data):
    doc = Doc(Vocab(), words=words)
    starts = sorted(data.draw(st.sets(st.integers(0, max(len(words) - 1, 0)), max_size=len(words))))
    ents = [Span(doc, s, s + 1, data.draw(st.sampled_from(["TECH", "ORG"]))) for s in starts if s < len(words)]
    doc.ents = ents
    terms = collect_terms(doc.ents, labels=["TECH"])
    kept = [e for e in doc.ents if e.label_ == "TECH"]
    assert sum(t.count for t in terms) == len(kept)
    assert len({t.key for t in terms}) == len(terms)
    firsts = [t.offsets[0] for t in terms]
    assert firsts == sorted(firsts)
    for t in terms:
        assert all(normalize_term(doc.text[s:e]) == t.key for s, e in t.offsets)
        assert t.text == doc.text[slice(*t.offsets[0])]
