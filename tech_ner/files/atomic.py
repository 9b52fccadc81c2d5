"""Atomic output: write to a temporary sibling, then rename over the target.

A crash or an InputError part-way leaves the previous output (or nothing) in
place, never half a file. No output ever removes a file the tool did not
write: a folder output is written only where the folder is new, empty, or
holds nothing but an earlier output of the same kind (listed in its
`OUTPUT_MANIFEST`), and outputs get the permissions the user's umask gives.
"""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Optional, Union

from .problems import InputError

# Written into every folder output: the files the tool wrote there, and so may replace next time.
OUTPUT_MANIFEST = ".tech-ner-output.json"


def current_umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _apply_umask(path: Path) -> None:
    """mkstemp and mkdtemp create 0600 / 0700 whatever the umask; give the output the mode a plain open() would."""
    mask = current_umask()
    if path.is_dir():
        os.chmod(path, 0o777 & ~mask)
        for child in path.iterdir():
            if child.is_file():
                os.chmod(child, 0o666 & ~mask)
    elif path.exists():
        os.chmod(path, 0o666 & ~mask)


def manifest_files(manifest: Any) -> List[str]:
    """The files a folder's manifest says the tool wrote there, and so may replace.

    manifest (Any): The manifest's parsed JSON (None when there is none or it cannot be read).
    RETURNS (List[str]): Its "files", each the name of one entry of the folder: a manifest cannot point outside its
        folder, and one of another shape lists nothing.
    """
    names = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\\" not in n]


def is_own_temporary(name: str, own: Iterable[str]) -> bool:
    """Whether `name` is a temporary file left beside one of the tool's files `own` (`.STEM.….tmp`, STEM the name
    without its extension): a writer killed while writing it."""
    return (
        name.startswith(".") and name.endswith(".tmp") and any(name.startswith(f".{n.rsplit('.', 1)[0]}.") for n in own)
    )


def refusal(
    listing: Iterable[str], manifest: Any, *, what: str = "the output", temporaries: bool = False
) -> Optional[str]:
    """The one rule of folder outputs: a folder may receive an output only if it holds nothing but files an earlier
    run wrote (listed in its manifest, and the manifest itself). It decides on names only, so a folder on any
    filesystem (a local one, or a pyarrow / fsspec URI) is checked the same way.

    listing (Iterable[str]): The names of the entries in the folder.
    manifest (Any): The folder's manifest, its parsed JSON (None when there is none or it cannot be read).
    what (str): What the folder is for, in the message.
    temporaries (bool): Whether temporary files left beside the tool's files (see is_own_temporary) count as its own.
    RETURNS (Optional[str]): Why the folder is refused, one line; None when it may be written.
    """
    own = set(manifest_files(manifest)) | {OUTPUT_MANIFEST}
    foreign = sorted(n for n in listing if n not in own and not (temporaries and is_own_temporary(n, own)))
    if not foreign:
        return None
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    return f"holds files this tool did not write ({shown}); give a new or empty folder for {what} (nothing was written)"


def _read_manifest(folder: Path) -> Any:
    """The parsed manifest of a local folder (None when there is none or it cannot be read)."""
    try:
        return json.loads((folder / OUTPUT_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _own_files(folder: Path) -> List[str]:
    """The files an earlier run wrote into `folder` (from its manifest; none without one)."""
    return manifest_files(_read_manifest(folder))


def check_replaceable(path: Union[str, Path], *, is_dir: bool = False) -> None:
    """Refuse an output that would remove or overwrite something the tool did not write.

    RAISES InputError: a file output that is a folder; a folder output that is a
        file, or a non-empty folder holding files not written by an earlier run (see refusal).
    """
    path = Path(path)
    if not is_dir:
        if path.is_dir():
            raise InputError(path, None, "is a folder; give a file name for the output (nothing was written)")
        return
    if path.exists() and not path.is_dir():
        raise InputError(path, None, "is a file; give a new or empty folder for this output (nothing was written)")
    if path.is_dir():
        problem = refusal([p.name for p in path.iterdir()], _read_manifest(path))
        if problem:
            raise InputError(path, None, problem)


@contextlib.contextmanager
def atomic_path(path: Union[str, Path], *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`.

    path (Path): The final file or folder.
    is_dir (bool): Whether the output is a folder (created empty for the caller).
    RAISES InputError: the output would remove something the tool did not write (see check_replaceable).
    """
    path = Path(path)
    check_replaceable(path, is_dir=is_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if is_dir:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        else:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as e:
        raise InputError(path, None, f"cannot write the output here ({e.strerror or e}); choose another path") from None
    try:
        yield tmp
        if is_dir:
            names = sorted(p.name for p in tmp.iterdir())
            (tmp / OUTPUT_MANIFEST).write_text(json.dumps({"files": names}, indent=1) + "\n", encoding="utf-8")
            _apply_umask(tmp)
            _replace_dir(tmp, path)
        else:
            _apply_umask(tmp)
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def _replace_dir(tmp: Path, path: Path) -> None:
    """Swap the new folder in; the old one held only this tool's files (check_replaceable saw to that)."""
    if not path.is_dir():
        os.replace(tmp, path)
        return
    check_replaceable(path, is_dir=True)  # again: something may have appeared while the output was written
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, old / path.name)
    os.replace(tmp, path)
    for name in _own_files(old / path.name) + [OUTPUT_MANIFEST]:
        written = old / path.name / name
        if written.is_dir() and not written.is_symlink():
            shutil.rmtree(written)  # a folder the earlier run wrote (a pipeline's component folders)
        else:
            written.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty only if a file appeared meanwhile: then it stays, hidden but kept
        (old / path.name).rmdir()
        old.rmdir()


def write_text_atomic(path: Union[str, Path], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
