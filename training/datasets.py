"""Dataset registry: keys `{name}-{version}`, built-in generated sets and on-disk folders.

Built-in datasets are generated from a fixed seed in code, so every machine has the same
bytes. On-disk datasets are folders `<datasets_dir>/<key>/` with `manifest.json` and JSONL or
Parquet files of traces, prompt/completion pairs or chats (training/dataset_files.py).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

from training.dataset_files import SUFFIXES, MalformedDataset, read_examples
from training.traces import Dataset, Trace

RANKS = "23456789TJQKA"
SUITS = "CDHS"


class UnknownDataset(LookupError):
    def __init__(self, key: str, available: list[str]):
        super().__init__(f"unknown dataset {key!r}; available: {', '.join(available) or 'none'}")
        self.key = key
        self.available = available


# ----------------------------------------------------------------------------- built-in

def high_card_duel(seed: int = 20_240_519, eval_fraction: float = 0.2) -> tuple[list[Trace], list[Trace]]:
    """High Card Duel: each player draws one card, Ace high; the prompt states both cards and
    the answer says who wins, or tie. Whole card pairs are held out for evaluation."""
    cards = [r + s for r in RANKS for s in SUITS]
    pairs = [(a, b) for a in cards for b in cards if a != b]  # 2,652 ordered pairs
    rng = random.Random(seed)
    rng.shuffle(pairs)
    n_eval = int(len(pairs) * eval_fraction)
    return [_duel(p) for p in pairs[n_eval:]], [_duel(p) for p in pairs[:n_eval]]


def _duel(pair: tuple[str, str]) -> Trace:
    a, b = pair
    return Trace(
        trace_id=f"hcd-{a}-{b}",
        prompt=f"P1 {a} P2 {b}",
        final_answer=_winner(a, b),
        steps=(f"P1 rank {RANKS.index(a[0]) + 2}, P2 rank {RANKS.index(b[0]) + 2}",),
    )


def _winner(a: str, b: str) -> str:
    ra, rb = RANKS.index(a[0]), RANKS.index(b[0])
    return "P1" if ra > rb else "P2" if rb > ra else "tie"


BUILT_IN: dict[str, Callable[[], tuple[list[Trace], list[Trace]]]] = {
    "ungar_hcd-v1": high_card_duel,
}


# ----------------------------------------------------------------------------- on disk

def _on_disk_keys(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "manifest.json").is_file())


def available_datasets(root: Path) -> list[str]:
    return sorted({*BUILT_IN, *_on_disk_keys(root)})


def dataset_exists(key: str, root: Path) -> bool:
    return key in BUILT_IN or (root / key / "manifest.json").is_file()


def load_dataset(key: str, root: Path) -> Dataset:
    if key in BUILT_IN:
        train, eval_ = BUILT_IN[key]()
    elif (root / key / "manifest.json").is_file():
        train, eval_ = _load_folder(root / key)
    else:
        raise UnknownDataset(key, available_datasets(root))
    return Dataset(key=key, train=tuple(train), eval=tuple(eval_), content_hash=_content_hash(train, eval_))


def _load_folder(folder: Path) -> tuple[list[Trace], list[Trace]]:
    """manifest.json: {"name", "version", "splits": {"train": "train.jsonl", "eval": "eval.jsonl"}}.
    Without "splits", every *.jsonl and *.parquet is read and a fixed 10% (by id hash) is held out."""
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise MalformedDataset(manifest_path, exc.lineno, f"not valid JSON: {exc.msg}") from None
    if not isinstance(manifest, dict):
        raise MalformedDataset(manifest_path, None, "must be a JSON object")
    splits = manifest.get("splits")
    if splits is None:
        files = sorted(f for f in folder.iterdir() if f.suffix in SUFFIXES)
        traces = [t for f in files for t in read_examples(f)]
        held_out = lambda t: int(hashlib.sha256(t.trace_id.encode()).hexdigest(), 16) % 10 == 0  # noqa: E731
        return [t for t in traces if not held_out(t)], [t for t in traces if held_out(t)]
    if not isinstance(splits, dict) or not {"train", "eval"} <= set(splits):
        raise MalformedDataset(manifest_path, None, '"splits" must name a "train" and an "eval" file')
    return read_examples(folder / splits["train"]), read_examples(folder / splits["eval"])


def _content_hash(train: list[Trace], eval_: list[Trace]) -> str:
    canonical = json.dumps(
        {"train": [t.__dict__ for t in train], "eval": [t.__dict__ for t in eval_]},
        sort_keys=True, default=list,
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
