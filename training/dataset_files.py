"""Examples from files: JSONL or Parquet, one example a line (a row), in any of three forms.

- trace (Tunix RT): {"trace_id", "prompt", "final_answer", "steps"?}
- prompt/completion: {"prompt", "completion", "id"?}
- chat: {"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...], "id"?}; the
  last message is the assistant's answer, the ones before it the context, rendered with the
  model's chat template when it has one.
Training puts the loss on the answer (final_answer, completion, last assistant message) only.
Every problem names the file, the line (or row) and what is wrong.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

from training.safe_files import DATASET_FILE_BYTES, UnreadableFile, open_regular
from training.traces import Trace

ROLES = ("system", "user", "assistant")
SUFFIXES = (".jsonl", ".parquet")


class MalformedDataset(ValueError):
    def __init__(self, path: Path, line: int | None, problem: str):
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = path, line, problem

    def __reduce__(self):  # rebuilt from its own arguments: Ray pickles a trial's exception to the driver
        return type(self), (self.path, self.line, self.problem), self.__dict__


def read_examples(path: Path, limit: int = DATASET_FILE_BYTES) -> list[Trace]:
    """Every example of the file: a regular file of at most `limit` bytes (training/safe_files.py)."""
    try:
        file = open_regular(path, limit)
    except UnreadableFile as exc:
        raise MalformedDataset(path, None, exc.problem) from None
    with file:
        rows = _parquet_rows(file, path) if path.suffix == ".parquet" else _jsonl_rows(file, path, limit)
        examples = [_example(record, path, number) for number, record in rows]
    if not examples:
        raise MalformedDataset(path, None, "no examples")
    return examples


def _jsonl_rows(file, path: Path, limit: int) -> Iterator[tuple[int, dict]]:
    text, read, number = io.TextIOWrapper(file, encoding="utf-8"), 0, 0
    while True:
        try:
            line = text.readline()
        except UnicodeDecodeError:
            raise MalformedDataset(path, number + 1, "not UTF-8 text") from None
        if not line:
            return
        number, read = number + 1, read + len(line)
        if read > limit:  # it grew since it was opened
            raise MalformedDataset(path, number, "the file is larger than it was when opened")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MalformedDataset(path, number, f"not valid JSON: {exc.msg}") from None
        yield number, record


def _parquet_rows(file, path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(file)  # the file opened and checked, not a path pyarrow opens again
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise MalformedDataset(path, None, f"not a readable Parquet file ({exc})") from None
    yield from enumerate(table.to_pylist(), start=1)


def _example(record, path: Path, number: int) -> Trace:
    if not isinstance(record, dict):
        raise MalformedDataset(path, number, "each line must be a JSON object")
    if "messages" in record:
        return _chat(record, path, number)
    if "completion" in record:
        prompt, completion = _text(record, "prompt", path, number), _text(record, "completion", path, number)
        return Trace(_id(record, "id", path, number), prompt, completion)
    for name in ("trace_id", "prompt", "final_answer"):
        _text(record, name, path, number)
    steps = record.get("steps") or []
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise MalformedDataset(path, number, '"steps" must be a list of strings')
    return Trace(record["trace_id"], record["prompt"], record["final_answer"], tuple(steps))


def _chat(record: dict, path: Path, number: int) -> Trace:
    messages = record["messages"]
    if not isinstance(messages, list) or len(messages) < 2:
        raise MalformedDataset(path, number, '"messages" must be a list of at least two messages')
    turns = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise MalformedDataset(path, number, f'messages[{i}].role must be one of {", ".join(ROLES)}')
        if not isinstance(message.get("content"), str) or not message["content"]:
            raise MalformedDataset(path, number, f"messages[{i}].content must be a non-empty string")
        turns.append((message["role"], message["content"]))
    if turns[-1][0] != "assistant":
        raise MalformedDataset(path, number, "the last message must be the assistant's (the answer to learn)")
    context = tuple(turns[:-1])
    return Trace(_id(record, "id", path, number), prompt=context[-1][1], final_answer=turns[-1][1], messages=context)


def _text(record: dict, name: str, path: Path, number: int) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedDataset(path, number, f'"{name}" must be a non-empty string')
    return value


def _id(record: dict, name: str, path: Path, number: int) -> str:
    value = record.get(name)
    if value is None:
        return f"{path.stem}-{number}"
    if not isinstance(value, (str, int)) or value == "":
        raise MalformedDataset(path, number, f'"{name}" must be a string or an integer')
    return str(value)
