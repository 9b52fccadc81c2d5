"""`tech-ner extract --engine ray` and `tech_ner.apps.distributed`: planning cuts files where the single-host reader
would read the same records; on a local Ray the shards hold exactly the single-host rows (same ids, terms, spans,
error rows), in Parquet or JSONL; --resume writes only missing shards; a killed actor loses and duplicates nothing;
`TermExtractor` works in a user's own Ray Data program; without Ray, one line names the extra."""

import json
import os
import pickle
import shutil
import signal
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

if os.environ.get("CI"):  # CI installs the distributed extra: there a missing Ray is a failure, not a skip
    import ray
else:
    ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from tech_ner.apps import distributed as dist  # noqa: E402
from tech_ner.apps.distributed.run import _user_errors  # noqa: E402
from tech_ner.apps.extract import extract_rows  # noqa: E402
from tech_ner.apps.inference import load_pipeline  # noqa: E402
from tech_ner.apps.records import Record, iter_records, resolve_inputs  # noqa: E402
from tech_ner.commands.cli import app  # noqa: E402
from tech_ner.files.problems import InputError  # noqa: E402

from .test_extract import SENTENCES, read_rows  # noqa: E402

PIECE_CHARS = 500  # every run here, single-host and Ray alike, cuts long texts the same way


def run(*args):
    return CliRunner().invoke(app, ["extract", *[str(a) for a in args]])


def same_rows(a, b):
    """Rows compared field by field, ids as strings (Parquet keeps every id as a string)."""
    return [{**r, "id": str(r["id"])} for r in a] == [{**r, "id": str(r["id"])} for r in b]


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A JSONL file (ids, missing ids, malformed lines, blank lines, one text long enough to be cut into pieces),
    a CSV file (a stray quote, a quoted field over lines, a row without id) and a folder of .txt files (one not UTF-8)."""
    folder = tmp_path_factory.mktemp("corpus")
    lines = []
    for i in range(23):
        text = f"{SENTENCES[i % 5]} Item {i}."
        if i == 4:
            lines.append("{not json")
        elif i == 9:
            lines.append(json.dumps({"id": "d9", "body": text}))
        elif i == 11:
            lines.append("")
        elif i == 13:
            lines.append(json.dumps({"id": "long", "text": " ".join(SENTENCES * 40)}))
        else:
            lines.append(json.dumps({"id": f"d{i}", "text": text} if i % 3 else {"text": text}))
    (folder / "docs.jsonl").write_text("\r\n".join(lines) + "\n", encoding="utf-8")
    (folder / "rows.csv").write_text(
        'id,text\nc1,"Hello, Rust"\nc2,"two\nlines of Go"\n3,"stray\nc4,fine Java\n,no id here\nc6,"more ""Python"""\n',
        encoding="utf-8",
    )
    txt = folder / "txt"
    (txt / "sub").mkdir(parents=True)
    for i, sentence in enumerate(SENTENCES):
        (txt / ("sub" if i % 2 else ".") / f"t{i}.txt").write_text(sentence + "\nSecond line.", encoding="utf-8")
    (txt / "bad.txt").write_bytes(b"fine line\nnot \xff UTF-8\n")
    (txt / "sub-x").mkdir()
    (txt / "sub-x" / "t.txt").write_text("Go and Rust", encoding="utf-8")  # pathlib's order: sub/ before sub-x/
    return folder


def inputs_of(corpus):
    return [corpus / "docs.jsonl", corpus / "rows.csv", corpus / "txt"]


@pytest.fixture(scope="module")
def single_host(tiny_pipeline, corpus, tmp_path_factory):
    """The real single-host `tech-ner extract` output for the corpus, long texts cut as the Ray runs cut them."""
    out = tmp_path_factory.mktemp("single") / "out.jsonl"
    res = run(*inputs_of(corpus), "-o", out, "-m", tiny_pipeline, "--no-progress", "--max-piece-chars", PIECE_CHARS)
    assert res.exit_code == 0, res.output
    return read_rows(out)


@pytest.fixture(scope="module")
def ray_output(ray_local, tiny_pipeline, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray") / "shards"
    res = run(
        *inputs_of(corpus),
        "-o",
        out,
        "-m",
        tiny_pipeline,
        "--engine",
        "ray",
        "--workers",
        2,
        "--format",
        "jsonl",
        "--block-records",
        4,
        "--max-piece-chars",
        PIECE_CHARS,
    )
    assert res.exit_code == 0, res.output
    return out, res


# ---------------------------------------------------------------- planning (no Ray, no model)


def records_of(inputs, block_records):
    blocks = dist.plan_blocks(dist.resolve_files([str(p) for p in inputs]), block_records=block_records)
    return blocks, [(r.id, r.text, r.error) for b in blocks for r in dist.read_block(b)]


def single_records(inputs):
    return [(r.id, r.text, r.error) for r in iter_records(resolve_inputs(inputs))]


@pytest.mark.parametrize("block_records", [1, 2, 5, 1000])
def test_blocks_read_the_single_host_records(corpus, block_records):
    blocks, records = records_of(inputs_of(corpus), block_records)
    assert records == single_records(inputs_of(corpus))
    assert [b["records"] for b in blocks] == [len(list(dist.read_block(b))) for b in blocks]
    assert all(b["records"] <= block_records for b in blocks)
    assert len({b["shard"] for b in blocks}) == len(blocks)
    assert blocks == records_of(inputs_of(corpus), block_records)[0]  # deterministic names


def test_a_glob_reads_what_it_matches(corpus):
    assert records_of([f"{corpus}/*.jsonl"], 5)[1] == single_records([corpus / "docs.jsonl"])
    files = dist.resolve_files([f"{corpus}/txt/sub*/*.txt"])
    assert [f.doc_id for f in files] == ["sub/t1.txt", "sub/t3.txt", "sub-x/t.txt"]


LINE_PARTS = [
    '{"id": 1, "text": "a"}',
    '{"text": "b\\u00e9"}',
    "",
    "  ",
    "{bad",
    '"x,y"',
    "a,b",
    'q,"open',
    'z,"',
    "\ufeff{}",
    "p,r",
    '{"id": "\\u00ff", "text": "c"}',
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(st.sampled_from(LINE_PARTS), min_size=1, max_size=14),
    ends=st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=14, max_size=14),
    block_records=st.integers(1, 3),
    kind=st.sampled_from(["jsonl", "csv"]),
    bad_byte=st.booleans(),
)
def test_cuts_of_any_file_read_the_same_records(tmp_path, parts, ends, block_records, kind, bad_byte):
    body = b"".join(p.encode("utf-8") + e for p, e in zip(parts, ends))
    if bad_byte:
        body = body.replace(b"a", b"\xff", 1)
    path = tmp_path / f"f.{kind}"
    path.write_bytes((b"id,text\n" if kind == "csv" else b"") + body + b"x")
    try:
        expected = single_records([path])
    except InputError:
        return  # a file single-host refuses outright (e.g. blank) is no test of the cuts
    assert records_of([path], block_records)[1] == expected


# ---------------------------------------------------------------- on a local Ray


def test_shards_equal_the_single_host_output(ray_output, single_host):
    out, res = ray_output
    assert f"Wrote {len(single_host)} rows" in res.stdout and "(4 error rows" in res.stdout
    rows = list(dist.read_output(str(out)))
    assert rows == single_host  # shards in name order: the input order, every field equal
    by_id = sorted(rows, key=lambda r: str(r["id"]))
    assert by_id == sorted(single_host, key=lambda r: str(r["id"]))
    assert [r["id"] for r in rows if r["error"]] == [5, "d9", 3, "bad.txt"]
    assert any(r["id"] == "long" and r["spans"] for r in rows)
    manifest = json.loads((out / ".tech-ner-output.json").read_text())
    assert manifest["complete"] and sorted(manifest["files"]) == sorted(p.name for p in out.glob("shard-*"))
    assert not list(out.glob(".*.tmp"))


def test_resume_writes_only_the_missing_shards(ray_output, single_host, tiny_pipeline, corpus, tmp_path):
    out = tmp_path / "shards"
    shutil.copytree(ray_output[0], out)
    shards = sorted(out.glob("shard-*"))
    removed = [shards[1], shards[-1]]
    for p in removed:
        p.unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in shards if p not in removed}
    stats = dist.extract_distributed(
        str(tiny_pipeline),
        [str(p) for p in inputs_of(corpus)],
        str(out),
        fmt="jsonl",
        workers=1,
        resume=True,
        block_records=4,
        max_piece_chars=PIECE_CHARS,
    )
    assert (stats.shards, stats.shards_resumed) == (2, len(shards) - 2)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*") if p.name in kept} == kept
    assert list(dist.read_output(str(out))) == single_host


def test_parquet_in_and_out_and_the_library_class(ray_local, tiny_pipeline, tmp_path):
    texts = [f"{SENTENCES[i % 5]} Item {i}." for i in range(11)]
    table = pa.table(
        {
            "id": [f"p{i}" if i % 4 else None for i in range(11)],
            "text": [None if i == 6 else t for i, t in enumerate(texts)],
        }
    )
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=4)
    stats = dist.extract_distributed(
        str(tiny_pipeline),
        [str(tmp_path / "in.parquet")],
        str(tmp_path / "out"),
        workers=1,
        cpus_per_worker=2,
        block_records=3,
    )
    assert (stats.rows, stats.errors, stats.shards) == (11, 1, 4)
    rows = list(dist.read_output(str(tmp_path / "out")))
    nlp = load_pipeline(tiny_pipeline)
    reference = list(extract_rows(nlp, [Record(i, f"p{i}" if i % 4 else i + 1, t) for i, t in enumerate(texts)]))
    reference[6] = {
        "id": "p6",
        "terms": [],
        "spans": [],
        "error": f"{tmp_path / 'in.parquet'}:7: column 'text' is null",
    }
    assert same_rows(rows, reference)
    assert pq.read_schema(next((tmp_path / "out").glob("shard-*.parquet"))) == dist.row_schema()

    # a user's own program, as the README shows it: ids kept as they are (here integers), written by Ray Data
    ds = ray.data.from_items([{"id": i, "text": None if i == 6 else t} for i, t in enumerate(texts)])
    ds.map_batches(
        dist.TermExtractor,
        fn_constructor_kwargs={"model": str(tiny_pipeline)},
        batch_size=4,
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=1,
    ).write_parquet(str(tmp_path / "lib"))
    got = sorted(pq.read_table(tmp_path / "lib").to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in got] == list(range(11))
    assert [r["terms"] for r in got] == [r["terms"] for r in reference]
    assert [r["spans"] for r in got] == [r["spans"] for r in reference]
    assert got[6]["error"] == "id 6: field 'text' is null"


def test_uris_in_and_out(ray_local, tiny_pipeline, corpus, tmp_path):
    """The object-storage path (pyarrow file systems, temporary name then move), run on file:// URIs."""
    reference = run(
        corpus / "docs.jsonl",
        "-o",
        tmp_path / "single.jsonl",
        "-m",
        tiny_pipeline,
        "--no-progress",
        "--max-piece-chars",
        PIECE_CHARS,
    )
    assert reference.exit_code == 0, reference.output
    out = f"file://{tmp_path}/shards"
    stats = dist.extract_distributed(
        str(tiny_pipeline), [f"file://{corpus}/*.jsonl"], out, workers=1, block_records=7, max_piece_chars=PIECE_CHARS
    )
    expected = [{**r, "error": r["error"] and f"file://{r['error']}"} for r in read_rows(tmp_path / "single.jsonl")]
    assert same_rows(list(dist.read_output(out)), expected) and stats.rows == len(expected)
    assert json.loads((tmp_path / "shards" / ".tech-ner-output.json").read_text())["complete"]
    assert not list((tmp_path / "shards").glob(".*.tmp"))


def _actor_pids():
    """The ShardWriter actors of the Ray this test process started (its descendants only: never another's)."""
    import psutil

    pids = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "ShardWriter" in " ".join(proc.cmdline()):
                pids.append(proc.pid)
        except psutil.Error:  # ended meanwhile
            continue
    return pids


@pytest.mark.slow
def test_a_killed_actor_loses_and_duplicates_nothing(ray_local, tiny_pipeline, tmp_path):
    n = 120
    lines = [json.dumps({"id": f"k{i}", "text": " ".join([SENTENCES[i % 5]] * 30)}) for i in range(n)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    single = tmp_path / "single.jsonl"
    assert run(tmp_path / "in.jsonl", "-o", single, "-m", tiny_pipeline, "--no-progress").exit_code == 0
    out = tmp_path / "out"
    result = {}

    def go():
        try:
            result["stats"] = dist.extract_distributed(
                str(tiny_pipeline), [str(tmp_path / "in.jsonl")], str(out), fmt="jsonl", workers=2, block_records=2
            )
        except BaseException as e:  # handed to the test thread
            result["error"] = e

    thread = threading.Thread(target=go)
    thread.start()
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("shard-*")):
        time.sleep(0.05)
    pids = _actor_pids()
    assert pids, "no actor process found"
    written = len(list(out.glob("shard-*")))
    os.kill(pids[0], signal.SIGKILL)
    assert thread.is_alive() and written < n // 2  # killed in the middle of the run
    thread.join(300)
    assert "error" not in result, result.get("error")
    stats = result["stats"]
    assert stats.rows == n and stats.records == n
    rows = list(dist.read_output(str(out)))
    assert rows == read_rows(single)  # every row once, in order
    assert len({r["id"] for r in rows}) == n
    assert not list(out.glob(".*.tmp"))


# ---------------------------------------------------------------- user errors: one line, nothing written


def test_without_ray_one_line_names_the_extra(monkeypatch, corpus, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    res = run(corpus / "docs.jsonl", "-o", tmp_path / "out", "--engine", "ray")
    assert res.exit_code == 1
    assert res.stderr.strip().count("\n") == 0 and 'pip install -e ".[distributed]"' in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--strict"], "--strict is for --engine local"),
        (["--n-process", "2"], "use --workers"),
        (["--format", "csv"], "--format 'csv': expected parquet or jsonl"),
        (["--engine", "spark"], "--engine 'spark': expected local or ray"),
    ],
)
def test_options_that_do_not_apply(corpus, tmp_path, extra, message):
    args = [corpus / "docs.jsonl", "-o", tmp_path / "out"] + (["--engine", "ray"] if "--engine" not in extra else [])
    res = run(*args, *extra)
    assert res.exit_code == 1 and message in res.stderr, res.output
    assert not (tmp_path / "out").exists()


def test_a_model_that_cannot_load_is_one_line(corpus, tmp_path):
    res = run(corpus / "docs.jsonl", "-o", tmp_path / "out", "--engine", "ray", "-m", tmp_path / "nope")
    assert (
        res.exit_code == 1
        and res.stderr.strip().splitlines()[-1].startswith("error: ")
        and "no such folder" in res.stderr
    )
    assert not (tmp_path / "out").exists()
    # in a worker: the InputError crosses the process boundary whole, or (an actor's __init__) as its message line
    error = InputError("model", None, "cannot load the pipeline: [E053] Could not read meta.json")
    assert str(pickle.loads(pickle.dumps(error))) == str(error)

    class ActorDied(Exception):
        pass

    def failing(exc):
        yield 1
        raise exc

    for exc in (
        RuntimeError("wrapped"),
        ActorDied(f"creation task failed\n...\ntech_ner.files.problems.InputError: {error}\n"),
    ):
        if isinstance(exc, RuntimeError):
            exc.__cause__ = error
        with pytest.raises(InputError) as raised:
            list(_user_errors(failing(exc)))
        assert str(raised.value) == str(error)
    with pytest.raises(ActorDied):
        list(_user_errors(failing(ActorDied("a bug, not bad input"))))


def test_refuses_a_folder_holding_other_files(corpus, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = run(corpus / "docs.jsonl", "-o", out, "--engine", "ray")
    assert res.exit_code == 1 and "holds files this tool did not write (notes.txt)" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    for source, target in ((corpus / "txt", corpus / "txt" / "out"), (f"{corpus}/*.jsonl", corpus / "out")):
        res = run(source, "-o", target, "--engine", "ray")
        assert res.exit_code == 1 and "inside the input folder" in res.stderr, res.output
        assert not target.exists()
