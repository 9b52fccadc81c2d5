"""Problems found in user input: each one names the file and line, and is counted.

Readers never raise on a bad line by themselves: they hand the problem to a
`Problems` collector, which either stops the run (strict mode, or a problem
that cannot be repaired) or counts the repair or skip so the run can report it.
"""
import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union


class InputError(ValueError):
    """A problem in user input that stops the run. str() is `file:line: message`."""

    def __init__(self, path: Union[str, Path, None], line: Optional[int], message: str):
        self.path = str(path) if path is not None else None
        self.line = line
        self.message = message
        super().__init__(self.location_message)

    @property
    def location_message(self) -> str:
        return format_problem(self.path, self.line, self.message)


def format_problem(path: Optional[str], line: Optional[int], message: str) -> str:
    if path is None:
        return message
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
            self.examples.append(Problem(str(path), line, kind, f"{message}; {action}"))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def friendly_errors(func):
    """Decorate a typer command: user errors become one line on stderr and exit code 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import typer

        from .backbone import BackboneError

        try:
            return func(*args, **kwargs)
        except (InputError, BackboneError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1)

    return wrapper
