"""`nlp.pipe(texts, n_process=2)` on a loaded transformer pipeline finishes (it used to hang in forked workers)."""

import os
import signal
import subprocess
import sys

SCRIPT = r"""
import sys, spacy
nlp = spacy.load(sys.argv[1])
nlp("a first call starts torch's thread pool in the parent " * 10)
texts = [f"We moved service {i} from Python to Rust on Kubernetes." for i in range(50)]
single = [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
multi = [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in nlp.pipe(texts, n_process=2, batch_size=8)]
print(len(multi), multi == single)
"""


def test_pipe_with_two_processes_after_torch_ran_in_the_parent(tiny_pipeline):
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    # its own process group, so that a hang can be ended with the forked workers that hold its pipes
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tiny_pipeline)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("nlp.pipe(n_process=2) hung for 120 s")
    assert proc.returncode == 0, err[-2000:]
    assert out.split() == ["50", "True"]
