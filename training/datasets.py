"""Dataset registry: keys `{name}-{version}`, built-in generated sets and on-disk folders.

Built-in datasets are generated from a fixed seed in code, so every machine has the same
bytes. On-disk datasets are folders `<datasets_dir>/<key>/` with `manifest.json` and JSONL or
Parquet files of traces, prompt/completion pairs or chats (training/dataset_files.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

from training.dataset_files import SUFFIXES, MalformedDataset, read_examples
from training.safe_files import UnreadableFile, is_regular_file, read_json, within
from training.traces import Dataset, Trace

RANKS = "23456789TJQKA"
SUITS = "CDHS"


# A key is one folder name under the datasets folder: no separator, no leading dot, so no
# "..", no absolute path. schemas/job_spec.py holds the same pattern (schemas imports no training).
DATASET_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class UnknownDataset(LookupError):
    """The same words whether the key names nothing, or something outside the datasets folder."""

    def __init__(self, key: str, available: list[str]):
        super().__init__(f"unknown dataset {key!r}; available: {', '.join(available) or 'none'}")
        self.key = key
        self.available = available

    def __reduce__(self):  # rebuilt from its own arguments (Ray pickles exceptions across processes)
        return type(self), (self.key, self.available), self.__dict__


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

def dataset_folder(key: str, root: Path) -> Path | None:
    """The on-disk dataset's folder (symlinks resolved), when `key` is a folder name whose folder,
    resolved, lies inside `root` and holds a manifest.json; None otherwise, outside or missing alike."""
    if not isinstance(key, str) or not DATASET_KEY.match(key):
        return None
    folder = within(key, root)
    manifest = within(Path(key, "manifest.json"), root) if folder is not None else None  # not a link out
    return folder if manifest is not None and is_regular_file(manifest) else None


def _on_disk_keys(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if dataset_folder(p.name, root) is not None)


def available_datasets(root: Path) -> list[str]:
    return sorted({*BUILT_IN, *_on_disk_keys(root)})


def dataset_exists(key: str, root: Path) -> bool:
    return key in BUILT_IN or dataset_folder(key, root) is not None


def load_dataset(key: str, root: Path) -> Dataset:
    """Checked again here, not only when the job was created: a trial may run an event that
    never went through the gateway."""
    folder = None if key in BUILT_IN else dataset_folder(key, root)
    if key in BUILT_IN:
        train, eval_ = BUILT_IN[key]()
    elif folder is not None:
        try:
            train, eval_ = _load_folder(folder, root.resolve())
        except MalformedDataset as exc:  # named inside the datasets folder, not by where the server keeps it
            real_root = root.resolve()
            shown = exc.path.relative_to(real_root) if exc.path.is_relative_to(real_root) else Path(key)
            raise MalformedDataset(shown, exc.line, exc.problem) from None
    else:
        raise UnknownDataset(key, available_datasets(root))
    return Dataset(key=key, train=tuple(train), eval=tuple(eval_), content_hash=_content_hash(train, eval_))


def _load_folder(folder: Path, root: Path) -> tuple[list[Trace], list[Trace]]:
    """manifest.json: {"name", "version", "splits": {"train": "train.jsonl", "eval": "eval.jsonl"}}.
    Without "splits", every *.jsonl and *.parquet is read and a fixed 10% (by id hash) is held out.
    Every file read, the manifest too, must lie inside the datasets folder once symlinks are followed."""
    manifest_path = _inside("manifest.json", folder, root, folder / "manifest.json")
    try:
        manifest = read_json(manifest_path)
    except UnreadableFile as exc:
        raise MalformedDataset(manifest_path, None, exc.problem) from None
    except UnicodeDecodeError:
        raise MalformedDataset(manifest_path, None, "not UTF-8 text") from None
    except ValueError as exc:  # json.JSONDecodeError
        raise MalformedDataset(manifest_path, getattr(exc, "lineno", None),
                               f"not valid JSON: {getattr(exc, 'msg', exc)}") from None
    if not isinstance(manifest, dict):
        raise MalformedDataset(manifest_path, None, "must be a JSON object")
    splits = manifest.get("splits")
    if splits is None:
        files = sorted(f for f in folder.iterdir() if f.suffix in SUFFIXES)
        traces = [t for f in files for t in read_examples(_inside(f.name, folder, root, manifest_path))]
        held_out = lambda t: int(hashlib.sha256(t.trace_id.encode()).hexdigest(), 16) % 10 == 0  # noqa: E731
        return [t for t in traces if not held_out(t)], [t for t in traces if held_out(t)]
    if not isinstance(splits, dict) or not {"train", "eval"} <= set(splits):
        raise MalformedDataset(manifest_path, None, '"splits" must name a "train" and an "eval" file')
    return tuple(read_examples(_inside(splits[s], folder, root, manifest_path)) for s in ("train", "eval"))


def _inside(name, folder: Path, root: Path, manifest_path: Path) -> Path:
    """The dataset's file `name`: a relative path in its folder, inside the datasets folder once
    symlinks are followed; MalformedDataset naming the manifest otherwise (outside or missing alike)."""
    written = Path(os.path.normpath(folder / name)) if isinstance(name, str) and name and "\0" not in name else None
    real = within(written, root) if written is not None and written.is_relative_to(folder) else None
    if real is None:
        raise MalformedDataset(manifest_path, None, f"{name!r} must name a file inside the dataset's folder")
    return real


def _content_hash(train: list[Trace], eval_: list[Trace]) -> str:
    canonical = json.dumps(
        {"train": [t.__dict__ for t in train], "eval": [t.__dict__ for t in eval_]},
        sort_keys=True, default=list,
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
