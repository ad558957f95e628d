"""On-disk datasets in the three forms (trace, prompt/completion, chat), JSONL and Parquet; every
problem names the file, the line and the rule."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.dataset_files import MalformedDataset, read_examples
from training.datasets import load_dataset

CHAT = {"id": "c1", "messages": [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}
PAIR = {"prompt": "Capital of France?", "completion": "Paris"}


def _jsonl(path: Path, *records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_chat_and_prompt_completion_lines_become_examples(tmp_path):
    chat, pair = read_examples(_jsonl(tmp_path / "mixed.jsonl", CHAT, PAIR))
    assert (chat.trace_id, chat.prompt, chat.final_answer) == ("c1", "2+2?", "4")
    assert chat.messages == (("system", "Be brief."), ("user", "2+2?"))
    assert (pair.trace_id, pair.prompt, pair.final_answer, pair.messages) == ("mixed-2", "Capital of France?", "Paris", ())


def test_parquet_rows_read_like_jsonl_lines(tmp_path):
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist([{**PAIR, "id": 6}, {"prompt": "1+1?", "completion": "2", "id": 7}]), path)
    first, second = read_examples(path)
    assert (first.prompt, first.final_answer, second.trace_id) == ("Capital of France?", "Paris", "7")


def test_a_dataset_folder_reads_every_jsonl_and_parquet_file(tmp_path):
    folder = tmp_path / "qa-v1"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"name": "qa", "version": "1"}))
    _jsonl(folder / "a.jsonl", *[{**PAIR, "id": f"a{i}"} for i in range(30)])
    pq.write_table(pa.Table.from_pylist([{**PAIR, "id": f"b{i}"} for i in range(30)]), folder / "b.parquet")
    dataset = load_dataset("qa-v1", tmp_path)
    assert len(dataset.train) + len(dataset.eval) == 60 and dataset.eval


@pytest.mark.parametrize(("record", "problem"), [
    ({"messages": [{"role": "user", "content": "hi"}]}, "at least two messages"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}]}, "messages[1].role must be one of"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}, "messages[1].content"),
    ({"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "yo"}]}, "last message must be"),
    ({"prompt": "x", "completion": 3}, '"completion" must be a non-empty string'),
    ({"prompt": "", "completion": "y"}, '"prompt" must be a non-empty string'),
    ({"prompt": "x", "completion": "y", "id": ""}, '"id" must be a string or an integer'),
    ({"trace_id": "t", "prompt": "p"}, '"final_answer" must be a non-empty string'),
])
def test_a_bad_line_is_named_with_its_file_line_and_rule(tmp_path, record, problem):
    path = _jsonl(tmp_path / "bad.jsonl", PAIR, record)
    with pytest.raises(MalformedDataset) as caught:
        read_examples(path)
    assert (caught.value.path, caught.value.line) == (path, 2)
    assert problem in caught.value.problem


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    path = tmp_path / "train.parquet"
    path.write_text("not parquet")
    with pytest.raises(MalformedDataset, match="not a readable Parquet file"):
        read_examples(path)
