"""Problems found in user input: each one names the file and line, and is counted.

Readers never raise on a bad line by themselves: they hand the problem to a
`Problems` collector, which either stops the run (strict mode, or a problem
that cannot be repaired) or counts the repair or skip so the run can report it.
"""

import functools
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, List, Optional, Union

SHOWN_CHARS = 80  # the most characters of one input value echoed in a message
MESSAGE_CHARS = 400  # the most characters of one message (a backstop: values go through `shown`)
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


class InputError(ValueError):
    """A problem in user input that stops the run. str() is `file:line: message`."""

    def __init__(self, path: Union[str, Path, None], line: Optional[int], message: str):
        self.path = str(path) if path is not None else None
        self.line = line
        self.message = message
        super().__init__(self.location_message)

    def __reduce__(self):  # pickled whole, so it crosses process boundaries (Ray workers) as itself
        return (type(self), (self.path, self.line, self.message))

    @property
    def location_message(self) -> str:
        return format_problem(self.path, self.line, self.message)


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """An input value as a message shows it: repr, cut to `limit` characters plus "…".

    A 3 MB line then costs a line of warning, not 3 MB, and control characters and lone
    surrogates are escaped, so the message can always be printed.
    """
    if isinstance(value, str):
        return repr(value[:limit]) + ("\u2026" if len(value) > limit else "")
    text = repr(value)
    return text[:limit] + ("\u2026" if len(text) > limit else "")


def printable(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters, with line breaks, control characters and lone surrogates (e.g. from a
    file name that is not UTF-8) escaped, so it prints as one line."""
    if len(text) > limit:
        text = text[:limit] + "\u2026"
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


def format_problem(path: Optional[str], line: Optional[int], message: str) -> str:
    message = printable(message)
    if path is None:
        return message
    path = printable(str(path))
    if line is None:
        return f"{path}: {message}"
    return f"{path}:{line}: {message}"


@dataclass
class Problem:
    path: Optional[str]
    line: Optional[int]
    kind: str
    message: str

    def __str__(self) -> str:
        return format_problem(self.path, self.line, self.message)


@dataclass
class Problems:
    """Collects repairs and skips.

    strict (bool): Raise InputError on the first problem instead of repairing.
    keep (int): How many problems to keep verbatim for the report; all are counted.
    """

    strict: bool = False
    keep: int = 200
    counts: Counter = field(default_factory=Counter)
    examples: List[Problem] = field(default_factory=list)

    def report(self, path, line: Optional[int], kind: str, message: str, action: str) -> None:
        """Record a problem that the run repairs or skips (action says which), or
        raise it in strict mode."""
        if self.strict:
            raise InputError(path, line, f"{message} (strict mode: nothing was written)")
        self.counts[kind] += 1
        if len(self.examples) < self.keep:
            self.examples.append(Problem(str(path), line, kind, f"{printable(message)}; {action}"))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def same_file(output: Union[str, Path], inputs: Iterable[Union[str, Path]]) -> None:
    """Refuse an output that is one of the inputs (compared as resolved paths): writing it would destroy the input."""
    target = Path(output).resolve()
    for path in inputs:
        if Path(path).resolve() == target:
            raise InputError(output, None, f"the output is the input {path}: choose another output path")


def check_output(output: Union[str, Path], *, is_dir: bool = False) -> None:
    """Check that `output` can be written before any work is done; an unwritable one is one InputError line.

    output (Path): The file (or, with is_dir, the folder) to be written.
    is_dir (bool): Whether the output is a folder.
    """
    output = Path(output)
    if not output.name or output.name in (".", ".."):
        raise InputError(output, None, "names no new file or folder: give one, e.g. corpus/train.spacy")
    if output.is_dir() and not is_dir:
        raise InputError(output, None, "is a folder: give a file name for the output")
    if output.exists() and is_dir and not output.is_dir():
        raise InputError(output, None, "is a file: give a folder name for the output")
    parent = output.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(output, None, f"cannot create it: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(output, None, f"cannot write to the folder {parent}: permission denied")


def _one_line_os_error(e: OSError) -> str:
    where = e.filename if e.filename is not None else None
    what = e.strerror or str(e)
    return format_problem(where, None, f"{what}") if where else what


def friendly_errors(func):
    """Decorate a typer command: user errors become one line on stderr and exit code 1, never a traceback.

    The one place that turns what bad input raises into a line: InputError (the readers' own messages),
    OSError (a path that cannot be read or written), LookupError (an unknown codec), RecursionError (input
    nested deeper than the parsers go) and ValueError (a value the libraries refuse). TECH_NER_DEBUG=1 shows
    the traceback instead. A failed consistency check (AssertionError) is a bug and keeps its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import typer

        from ..pipeline.backbone import BackboneError

        try:
            return func(*args, **kwargs)
        except (InputError, BackboneError) as e:
            message = str(e)
        except OSError as e:
            if os.environ.get("TECH_NER_DEBUG"):
                raise
            message = _one_line_os_error(e)
        except RecursionError:
            if os.environ.get("TECH_NER_DEBUG"):
                raise
            message = "an input is nested too deeply to read (thousands of levels of brackets?)"
        except (LookupError, ValueError) as e:
            if os.environ.get("TECH_NER_DEBUG") or isinstance(e, (KeyError, IndexError)):
                raise  # a missing key or index is a bug, not bad input
            message = printable(" ".join(str(e).split()) or type(e).__name__)
        typer.echo(f"error: {printable(' '.join(message.splitlines()), 2 * MESSAGE_CHARS)}", err=True)
        raise typer.Exit(1)

    return wrapper
