"""Reading what a user's input names (a dataset key, a model id): only inside a root, only regular
files, only so many bytes, never blocking.

A path in a job spec could name anything the server can open: somewhere outside the data
folders (an existence oracle, a file echoed back in an error), a FIFO (open() and read() block
forever), /dev/zero (never ends), a sparse file (claims gigabytes that cost nothing to create).
So a path is confined to its root lexically first (a path that names somewhere else is refused
without touching the file system, so the answer says nothing about what exists there) and again
after following symlinks; and a file is stat'ed after following symlinks, must be a regular
file within a size bound, and is opened with O_NONBLOCK, so a FIFO swapped in after the check
cannot block the open either.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import BinaryIO

MiB = 2**20
# config.json, generation_config.json, tokenizer_config.json, a dataset's manifest.json, an index.
JSON_BYTES = 4 * MiB
# tokenizer.json: Gemma 3's is 33 MB.
TOKENIZER_BYTES = 64 * MiB
# One dataset file (JSONL or Parquet); a trial holds every example in memory anyway.
DATASET_FILE_BYTES = 1024 * MiB
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


class UnreadableFile(ValueError):
    """The file is missing, not a regular file, or over its size bound; says which, for `path`."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem

    def __reduce__(self):  # rebuilt from its own arguments (Ray pickles exceptions across processes)
        return type(self), (self.path, self.problem), self.__dict__


def within(path: Path | str, root: Path) -> Path | None:
    """`path` (relative to `root`, or absolute) with symlinks resolved, when it lies inside
    `root` both as written and once resolved; None otherwise, whether or not it exists."""
    root_written = Path(os.path.abspath(root))
    try:
        root_real = root_written.resolve()
        written = Path(os.path.normpath(root_written / path))  # `root / "/abs"` is "/abs"
        if not (written.is_relative_to(root_written) or written.is_relative_to(root_real)):
            return None  # decided from the string alone
        real = written.resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL in the path
        return None
    return real if real.is_relative_to(root_real) else None


def is_regular_file(path: Path) -> bool:
    """A regular file once symlinks are followed (never a FIFO, a device or a socket)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def open_regular(path: Path, limit: int) -> BinaryIO:
    """`path` opened for binary reading: a regular file of at most `limit` bytes; UnreadableFile otherwise."""
    try:
        _check(path, os.stat(path), limit)
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise UnreadableFile(path, "file not found") from None
    except OSError as exc:
        raise UnreadableFile(path, f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        _check(path, os.fstat(fd), limit)  # what was opened, which may not be what was stat'ed
        os.set_blocking(fd, True)  # a regular file: blocking reads are plain reads
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: Path, limit: int) -> bytes:
    with open_regular(path, limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew since the check
        raise UnreadableFile(path, f"larger than the {_size(limit)} read from such a file")
    return data


def read_json(path: Path, limit: int = JSON_BYTES):
    """The JSON value in the file; UnreadableFile, or ValueError when it is not UTF-8 JSON."""
    return json.loads(read_bounded(path, limit).decode("utf-8"))


def _check(path: Path, st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(path, "not a regular file")
    if st.st_size > limit:
        raise UnreadableFile(path, f"{st.st_size:,} bytes, more than the {_size(limit)} read from such a file")


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB else f"{n} bytes"
