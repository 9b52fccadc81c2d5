"""The one worker thread that runs the pipeline, taking the waiting requests in turn, piece by piece."""

import asyncio
import collections
import concurrent.futures
import queue
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple


from ..inference import merge_pieces, piece_entities, terms_function, text_pieces
from .settings import ServeError

TERMS_SEPARATOR = "; "


@dataclass
class Extraction:
    """What the pipeline found in one text.

    text (str): The text, as given.
    entities (List[Tuple[int, int, str]]): Character offsets and label of every entity, in order.
    terms (List[TechTerm]): The distinct technology terms, in order of first mention.
    """

    text: str
    entities: List[Tuple[int, int, str]]
    terms: List[Any]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "characters": len(self.text),
            "terms": [t.to_dict() for t in self.terms],
            "entities": [
                {"start": s, "end": e, "label": label, "text": self.text[s:e]} for s, e, label in self.entities
            ],
        }

    def terms_cell(self) -> str:
        return TERMS_SEPARATOR.join(t.text for t in self.terms)


class _Job:
    """One request's texts, cut into pieces that the worker takes a few at a time."""

    def __init__(self, texts: Sequence[str], max_chars: int):
        self.texts = list(texts)
        self.pieces = [text_pieces(t, max_chars) for t in self.texts]  # (start, end) of each piece
        self.todo = collections.deque((i, j) for i, pieces in enumerate(self.pieces) for j in range(len(pieces)))
        self.docs: List[List[Any]] = [[None] * len(pieces) for pieces in self.pieces]
        self.future: concurrent.futures.Future = concurrent.futures.Future()

    def take(self, max_pieces: int, max_chars: int) -> List[Tuple[int, int, str]]:
        """The next pieces: at least one, then more while under `max_pieces` and `max_chars`."""
        taken: List[Tuple[int, int, str]] = []
        chars = 0
        while self.todo and len(taken) < max_pieces and (not taken or chars + len(self._peek()) <= max_chars):
            i, j = self.todo.popleft()
            piece = self._piece(i, j)
            taken.append((i, j, piece))
            chars += len(piece)
        return taken

    def _peek(self) -> str:
        return self._piece(*self.todo[0])

    def _piece(self, i: int, j: int) -> str:
        start, end = self.pieces[i][j]
        return self.texts[i][start:end]


class Extractor:
    """Runs the pipeline in one worker thread, interleaving the requests that wait.

    Every text is cut into pieces of at most `piece_chars` characters. The worker goes round the requests in
    turn, taking from each at most `batch_size` pieces and `piece_chars` characters, and runs the round as one
    `nlp.pipe` batch: a small request sent beside a big one waits for one round, not for the big one.

    nlp (Language): The pipeline.
    batch_size (int): The most pieces taken from one request per round, and the `nlp.pipe` batch size.
    max_batch_texts (int): The most pieces in one round (every request's together).
    piece_chars (int): The longest piece; also capped by `nlp.max_length`.
    """

    def __init__(self, nlp, *, batch_size: int = 32, max_batch_texts: int = 128, piece_chars: int = 5_000):
        self.nlp = nlp
        self.batch_size = batch_size
        self.max_batch_texts = max_batch_texts
        self.piece_chars = piece_chars
        self._terms = terms_function(nlp)
        self._jobs: "queue.Queue[Optional[_Job]]" = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._start_lock = threading.Lock()

    def submit(self, texts: Sequence[str]) -> "concurrent.futures.Future[List[Extraction]]":
        """Queue texts for the worker. RETURNS (Future[List[Extraction]]): one Extraction per text; cancel it
        to drop the pieces not yet processed."""
        job = _Job(texts, max(1, min(self.piece_chars, self.nlp.max_length)))
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="tech-ner-nlp", daemon=True)
                self._thread.start()
        self._jobs.put(job)
        return job.future

    async def extract(self, texts: Sequence[str], timeout: Optional[float] = None) -> List[Extraction]:
        """Process texts without blocking the event loop.

        timeout (Optional[float]): Seconds before the request is dropped with a 503 ServeError.
        RETURNS (List[Extraction]): One per text, in order.
        """
        future = asyncio.wrap_future(self.submit(texts))  # cancelling it cancels the job
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise ServeError(
                503,
                f"the request took longer than {timeout:g} s to process (the server's "
                "--request-timeout); send less text, or try again when the server is less busy",
            )

    def close(self) -> None:
        """Stop the worker after the jobs already queued."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._jobs.put(None)
            thread.join(timeout=30)

    def _work(self) -> None:
        active: "collections.deque[_Job]" = collections.deque()
        stopping = False
        while True:
            arrived = [] if active or stopping else [self._jobs.get()]  # idle: wait for work
            while True:  # every request that arrived joins the rotation
                try:
                    arrived.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            for job in arrived:
                if job is None:
                    stopping = True
                else:
                    active.append(job)
            for job in [j for j in active if j.future.cancelled()]:
                active.remove(job)  # timed out or abandoned: its pieces are not worth the time
            if not active:
                if stopping:
                    return
                continue
            self._run_round(active)

    def _run_round(self, active: "collections.deque[_Job]") -> None:
        round_: List[Tuple[_Job, List[Tuple[int, int, str]]]] = []
        budget = self.max_batch_texts
        for job in active:
            if budget <= 0:
                break
            taken = job.take(min(self.batch_size, budget), self.piece_chars)
            budget -= len(taken)
            round_.append((job, taken))
        active.rotate(-len(round_))  # the jobs served go to the back of the line
        try:
            docs = iter(self.nlp.pipe([p for _, taken in round_ for _, _, p in taken], batch_size=self.batch_size))
            for job, taken in round_:
                for i, j, _ in taken:
                    job.docs[i][j] = next(docs)
        except Exception:
            # one request's text must not fail the others: retry each alone
            for job, taken in round_:
                try:
                    for (i, j, _), doc in zip(taken, list(self.nlp.pipe([p for _, _, p in taken]))):
                        job.docs[i][j] = doc
                except Exception as e:  # noqa: BLE001  (handed to the request that sent it)
                    active.remove(job)
                    _settle(job.future, exception=e)
        for job, _ in round_:
            if not job.todo and job in active:
                active.remove(job)
                try:
                    _settle(job.future, result=self._merge(job))
                except Exception as e:  # noqa: BLE001
                    _settle(job.future, exception=e)

    def _merge(self, job: _Job) -> List[Extraction]:
        out = []
        for text, pieces, docs in zip(job.texts, job.pieces, job.docs):
            if "".join(doc.text for doc in docs) != text:  # an invariant of split_text; checked even under -O
                raise RuntimeError("pieces of a long text must join back to it")
            whole = (
                docs[0]
                if len(docs) == 1
                else merge_pieces(ent for (start, _), doc in zip(pieces, docs) for ent in piece_entities(doc, start))
            )
            entities = [(e.start_char, e.end_char, e.label_) for e in whole.ents]
            out.append(Extraction(text=text, entities=entities, terms=self._terms(whole)))
        return out


def _settle(future: concurrent.futures.Future, result: Any = None, exception: Optional[BaseException] = None) -> None:
    """Set a future's outcome unless it was cancelled meanwhile (a request that timed out)."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass
