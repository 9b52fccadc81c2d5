"""The outside_bias setting of bio_ner and `tech-ner calibrate`, which chooses it on a held-out set."""

import json

import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from tech_ner.evaluation.calibrate import choose, f_beta, out_of_sample, precision_lower_bound, sweep
from tech_ner.commands.cli import app
from tech_ner.corpus.docbin import INFO_FILE

runner = CliRunner()


@pytest.fixture(scope="module")
def nlp(tiny_pipeline):
    return spacy.load(tiny_pipeline)


@pytest.fixture(scope="module")
def gold(nlp, tiny_corpus):
    return list(DocBin().from_disk(tiny_corpus / "dev.spacy").get_docs(nlp.vocab))


def test_outside_bias_moves_tokens_to_o_only_one_way(nlp):
    ner = nlp.get_pipe("ner")
    rng = numpy.random.default_rng(0)
    for _ in range(50):
        logits = rng.normal(size=(12, len(ner.tags))).astype("float32")
        outside = [int((ner.decode(logits, outside_bias=b) == 0).sum()) for b in (-3, -1, 0, 1, 3, 50)]
        assert outside == sorted(outside)  # a path's score is linear in the bias: more O never becomes fewer
        assert outside[-1] == 12
        assert (ner.decode(logits, outside_bias=0.0) == ner.decode(logits)).all()


def test_outside_bias_is_checked():
    blank = spacy.blank("en")
    with pytest.raises(ValueError, match="outside_bias"):
        blank.add_pipe("bio_ner", name="ner", config={"outside_bias": float("nan")})


def test_sweep_scores_each_bias_and_choose_prefers_the_smallest_change(nlp, gold):
    rows, _ = sweep(nlp, gold, biases=(0.0, 100.0))
    assert [r["outside_bias"] for r in rows] == [0.0, 100.0]
    assert rows[1]["r"] == 0.0 and rows[1]["f"] == 0.0  # nothing is tagged against such a bias
    assert rows[1]["predicted"] == 0 and rows[1]["p_low"] == 0.0
    assert rows[0]["predicted"] > 0 and rows[0]["p_low"] <= rows[0]["p"]
    at_half = sweep(nlp, gold, biases=(0.0,), confidence=0.5)[0][0]  # the bound at 0.5 is the scorer's precision
    assert at_half["p_low"] == at_half["p"] and at_half["predicted"] == rows[0]["predicted"]
    tie = [
        {"outside_bias": 1.0, "f_beta": 0.5, "p": 0.62, "p_low": 0.6},
        {"outside_bias": -0.5, "f_beta": 0.5, "p": 0.52, "p_low": 0.5},
        {"outside_bias": 2.0, "f_beta": 0.4, "p": 0.92, "p_low": 0.9},
    ]
    assert choose(tie) == (tie[1], True)
    assert choose(tie, min_precision=0.55) == (tie[0], True)  # the best F among the precise enough
    assert choose(tie, min_precision=0.85) == (tie[2], True)
    assert choose(tie, min_precision=0.95) == (tie[1], False)  # none is: the best overall, and it says so
    # the floor is checked on the lower bound: a precision just above it on a small sample does not pass
    assert choose([{"outside_bias": 0.0, "f_beta": 0.9, "p": 0.87, "p_low": 0.84}], 0.85)[1] is False
    assert f_beta(0.5, 1.0, 1.0) == pytest.approx(2 / 3)
    assert f_beta(0.5, 1.0, 0.5) == pytest.approx(1.25 * 0.5 / (0.25 * 0.5 + 1.0))
    assert f_beta(0.0, 0.0, 1.0) == 0.0


def test_precision_lower_bound_is_wilsons_and_tightens_with_the_sample():
    # Wilson's score interval, one-sided: 90 of 100 at 0.975 is the two-sided 95% interval's lower end, 0.8256
    assert precision_lower_bound(90, 100, 0.975) == pytest.approx(0.8256, abs=1e-4)
    assert precision_lower_bound(50, 100, 0.5) == pytest.approx(0.5)  # at 0.5 confidence: the precision itself
    bounds = [precision_lower_bound(87 * k, 100 * k, 0.9) for k in (1, 3, 10, 100)]
    assert bounds == sorted(bounds) and bounds[-1] < 0.87 and bounds[0] < 0.85 < bounds[-1]
    assert precision_lower_bound(0, 0, 0.9) == 0.0 and precision_lower_bound(5, 5, 0.9) < 1.0
    assert precision_lower_bound(0, 10, 0.9) == 0.0  # never below 0 (the formula rounds to -1e-17)
    with pytest.raises(ValueError, match="confidence"):
        precision_lower_bound(5, 10, 1.0)


def test_calibrate_writes_a_pipeline_that_loads_with_its_bias(tiny_pipeline, tiny_corpus, tmp_path):
    out, report = tmp_path / "calibrated", tmp_path / "sweep.json"
    res = runner.invoke(
        app, ["calibrate", str(tiny_pipeline), str(tiny_corpus / "dev.spacy"), "-o", str(out), "--report", str(report)]
    )
    assert res.exit_code == 0, res.output
    chosen = json.loads(report.read_text())["chosen"]["outside_bias"]
    assert f"outside_bias {chosen:+.2f}" in res.output
    loaded = spacy.load(out)
    assert loaded.get_pipe("ner").cfg["outside_bias"] == chosen
    assert loaded.config["components"]["ner"]["outside_bias"] == chosen
    original = spacy.load(tiny_pipeline)
    original.get_pipe("ner").cfg["outside_bias"] = chosen
    for text in ("We rewrote the parser in Rust and kept the Python bindings .", "Nobody liked the new office ."):
        assert [(e.start, e.end) for e in loaded(text).ents] == [(e.start, e.end) for e in original(text).ents]
    again = runner.invoke(app, ["calibrate", str(tiny_pipeline), str(tiny_corpus / "dev.spacy"), "-o", str(out)])
    assert again.exit_code == 0, again.output  # a rerun replaces the folder it wrote, component folders and all


def test_calibrate_picks_its_data_from_the_corpus_folder(tiny_pipeline, tiny_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "dev.spacy").write_bytes((tiny_corpus / "dev.spacy").read_bytes())
    (corpus / INFO_FILE).write_text(json.dumps({"embedded": False}))
    res = runner.invoke(app, ["calibrate", str(tiny_pipeline), "--corpus-dir", str(corpus), "-o", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "F1 " in res.output and f"on {corpus / 'dev.spacy'}" in res.output
    assert "precision >=" not in res.output  # own data: no precision floor
    (corpus / INFO_FILE).write_text(json.dumps({"embedded": True}))
    res = runner.invoke(app, ["calibrate", str(tiny_pipeline), "--corpus-dir", str(corpus), "-o", str(tmp_path / "w")])
    assert res.exit_code != 0 and "wild_dev.spacy" in res.output  # the embedded corpus calibrates on the wild set
    (corpus / "wild_dev.spacy").write_bytes((tiny_corpus / "dev.spacy").read_bytes())
    res = runner.invoke(app, ["calibrate", str(tiny_pipeline), "--corpus-dir", str(corpus), "-o", str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    # the tiny model is far from precise: no bias reaches the floor, and the run says so
    assert "no bias has precision >= 0.85 at its 90% lower confidence bound" in res.output


@pytest.mark.parametrize("problem", ["labels", "beta", "floor", "keep", "both", "confidence", "confidence_low"])
def test_calibrate_refuses_in_one_line_and_writes_nothing(problem, tiny_pipeline, tiny_corpus, tmp_path):
    data, out, extra = tiny_corpus / "dev.spacy", tmp_path / "out", []
    if problem == "labels":
        nlp = spacy.blank("en")
        doc = nlp("Rust is fast")
        doc.ents = [doc.char_span(0, 4, label="LANGUAGE")]
        data = tmp_path / "other.spacy"
        DocBin(docs=[doc]).to_disk(data)
    elif problem == "beta":
        extra = ["--beta", "nan"]
    elif problem == "floor":
        extra = ["--min-precision", "1.5"]
    elif problem == "confidence":
        extra = ["--confidence", "1"]
    elif problem == "confidence_low":
        extra = ["--confidence", "0.4"]
    elif problem == "keep":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif problem == "both":
        extra = ["--corpus-dir", str(tiny_corpus)]
    res = runner.invoke(app, ["calibrate", str(tiny_pipeline), str(data), "-o", str(out), *extra])
    assert res.exit_code != 0
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1, res.output
    if problem == "keep":
        assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    else:
        assert not out.exists()


def test_the_sweep_scores_what_the_whole_pipeline_predicts(nlp, gold):
    from spacy.scorer import Scorer
    from spacy.tokens import Doc
    from spacy.training import Example

    assert "term_rules" in nlp.pipe_names[nlp.pipe_names.index("ner") + 1 :]
    for bias in (0.0, -8.0):  # at -8 nearly every token is tagged, and term_rules drops the dangling ones
        nlp.get_pipe("ner").cfg["outside_bias"] = bias
        copies = [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in gold]
        whole = Scorer.score_spans([Example(p, g) for p, g in zip(nlp.pipe(copies), gold)], "ents")
        nlp.get_pipe("ner").cfg["outside_bias"] = 0.0
        (row,), _ = sweep(nlp, gold, biases=(bias,))
        assert (row["p"], row["r"], row["f"]) == tuple(
            round(whole[k] or 0.0, 4) for k in ("ents_p", "ents_r", "ents_f")
        )


def _docs(rows):
    return numpy.array(rows, dtype=float)


def test_out_of_sample_keeps_a_bias_that_wins_everywhere_and_not_one_document_s_luck():
    steady = {0.0: _docs([[7, 10, 10]] * 20), -1.0: _docs([[8, 10, 10]] * 20)}
    check = out_of_sample(steady)
    assert check["gain_mean"] > 0 and check["gain_positive_share"] == 1.0 and check["bias_median"] == -1.0
    # bias 1 is the best on the whole set (+3 entities on one document, -1 on another) but only by that one document
    lucky = {0.0: _docs([[7, 10, 10]] * 20), 1.0: _docs([[10, 10, 10], [6, 10, 10]] + [[7, 10, 10]] * 18)}
    assert max(lucky, key=lambda b: lucky[b][:, 0].sum()) == 1.0
    check = out_of_sample(lucky)
    assert check["gain_mean"] < 0 and check["gain_positive_share"] == 0.0
    with pytest.raises(ValueError, match="bias 0"):
        out_of_sample({1.0: steady[-1.0]})
    with pytest.raises(ValueError, match="two documents"):
        out_of_sample({0.0: _docs([[1, 1, 1]])})


def test_sweep_counts_add_up_to_its_rows(nlp, gold):
    rows, counts = sweep(nlp, gold, biases=(-1.0, 0.0, 2.0))
    for row in rows:
        right, predicted, true = counts[row["outside_bias"]].sum(axis=0)
        assert predicted == row["predicted"] and true == sum(len(doc.ents) for doc in gold)
        assert round(right / max(predicted, 1), 4) == row["p"] and round(right / true, 4) == row["r"]


@pytest.mark.parametrize("mode", ["--out-of-sample", "--in-sample"])
def test_calibrate_keeps_a_bias_only_where_it_pays_out_of_sample(mode, tiny_pipeline, tiny_corpus, tmp_path):
    report = tmp_path / "sweep.json"
    args = ["calibrate", str(tiny_pipeline), str(tiny_corpus / "dev.spacy"), "-o", str(tmp_path / "m")]
    res = runner.invoke(app, args + ["--report", str(report), mode])
    assert res.exit_code == 0, res.output
    got = json.loads(report.read_text())
    best_whole_set = max(got["sweep"], key=lambda row: (row["f_beta"], -abs(row["outside_bias"])))
    assert got["in_sample_choice"] == best_whole_set
    check = got["out_of_sample"]
    if mode == "--in-sample" or best_whole_set["outside_bias"] == 0.0:
        assert check is None and got["chosen"] == best_whole_set
    else:
        assert check["halvings"] == 100 and "Out of sample" in res.output
        assert got["chosen"]["outside_bias"] == (best_whole_set["outside_bias"] if check["gain_mean"] > 0 else 0.0)


def test_calibrate_falls_back_to_bias_0_when_the_choice_loses_out_of_sample(
    monkeypatch, tiny_pipeline, tiny_corpus, tmp_path
):
    import tech_ner.evaluation.calibrate as calibrate

    losing = {"halvings": 100, "gain_mean": -0.01, "gain_sd": 0.02, "gain_positive_share": 0.2, "bias_median": -0.25}
    monkeypatch.setattr(calibrate, "out_of_sample", lambda counts, beta: losing)
    out, report = tmp_path / "m", tmp_path / "sweep.json"
    res = runner.invoke(
        app,
        ["calibrate", str(tiny_pipeline), str(tiny_corpus / "dev.spacy"), "-o", str(out)] + ["--report", str(report)],
    )
    assert res.exit_code == 0, res.output
    got = json.loads(report.read_text())
    assert got["in_sample_choice"]["outside_bias"] != 0.0  # the tiny model's best bias on its dev set is not 0
    assert got["chosen"]["outside_bias"] == 0.0 and got["out_of_sample"] == losing
    assert "did not pay out of sample" in res.output and "(--in-sample keeps it)" in res.output
    assert spacy.load(out).get_pipe("ner").cfg["outside_bias"] == 0.0
