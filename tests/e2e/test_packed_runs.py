"""Packed trials as runs (training/pack_run.py): each slot's trial ends with what run_pipeline
gives the same trial alone (reports, final losses, held-out answers, manifest), and a trial
continued from its slot checkpoint in a new pack (the tuner was killed) ends where it would
have ended uninterrupted. Float32 at matmul precision "highest"; tolerances as in
test_packed_trials.py."""

from __future__ import annotations

import json

import jax
import pytest

from training.folders import Folders
from training.pack_run import PackedRuns, SlotDiverged
from training.run import run_pipeline
from training.warm import WarmWorker

COMMON = {"max_steps": 6, "eval_every": 3, "batch_size": 4, "max_seq_length": 48}
# Other learning rates, ranks and alphas; one seed: the built-in model's weights are drawn from it,
# and the trials of a pack share one base model.
TRIALS = {
    "a": {**COMMON, "learning_rate": 3e-3, "lora_rank": 4, "lora_alpha": 8.0},
    "b": {**COMMON, "learning_rate": 1e-2, "warmup_steps": 1, "lora_rank": 2, "lora_alpha": 16.0, "max_steps": 9},
}  # b steps on after a ended: a's end (merged into the base, evaluated) leaves the pack's base as it was
DATASET, MODEL = "ungar_hcd-v1", "tiny-gemma3"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return Folders(jax_cache=tmp_path_factory.mktemp("jax-cache"))


def _runs(folders, slots=2) -> PackedRuns:
    return PackedRuns(DATASET, MODEL, folders=folders, slots=slots, rank=4, targets="all", seed=0,
                      intermediate_scores=False, worker=WarmWorker())


def _until_final(runs: PackedRuns, trials) -> dict[str, list[dict]]:
    records = {trial: [] for trial in trials}
    while any(not out or not out[-1].get("final") for out in records.values()):
        for trial, out in records.items():
            if not out or not out[-1].get("final"):
                runs.want(trial)
        for trial, reached in runs.step().items():
            assert not isinstance(reached, Exception), reached
            records[trial] += reached
    return records


@pytest.fixture(scope="module")
def packed(folders, tmp_path_factory):
    root = tmp_path_factory.mktemp("packed")
    with jax.default_matmul_precision("highest"):
        runs = _runs(folders)
        for trial, config in TRIALS.items():
            runs.start(trial, config, run_dir=root / trial, run_id=trial, checkpoint_dir=root / f"{trial}.state",
                       restored=False)
        return root, _until_final(runs, TRIALS)


@pytest.fixture(scope="module")
def alone(folders, tmp_path_factory):
    root = tmp_path_factory.mktemp("alone")
    with jax.default_matmul_precision("highest"):
        for trial, config in TRIALS.items():
            run_pipeline(DATASET, MODEL, config, folders=folders, run_dir=root / trial)
    return root


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


@pytest.mark.parametrize("trial", TRIALS)
def test_a_packed_trial_ends_as_it_would_alone(packed, alone, trial):
    root, records = packed
    total = TRIALS[trial]["max_steps"]
    steps = [record["step"] for record in records[trial] if not record.get("final")]
    assert steps == list(range(3, total + 1, 3))
    assert sorted(p.name for p in (root / f"{trial}.state").iterdir()) == [str(total)]  # the newest slot, only
    mine, theirs = _manifest(root / trial), _manifest(alone / trial)
    assert mine["pack"] == {"slots": 2, "slot": list(TRIALS).index(trial)}
    assert mine["hyperparameters"] == theirs["hyperparameters"] and mine["steps"] == theirs["steps"] == total
    for name in ("eval_loss", "train_loss"):
        assert mine["metrics"][name] == pytest.approx(theirs["metrics"][name], rel=1e-4)
    losses = [json.loads((folder / trial / "step_losses.json").read_text()) for folder in (root, alone)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    answers = [[json.loads(line)["prediction"] for line in (folder / trial / "predictions.jsonl").open()]
               for folder in (root, alone)]
    assert answers[0] == answers[1]  # the merged weights agree to rounding: the same greedy answers
    assert mine["metrics"]["exact_match"] == theirs["metrics"]["exact_match"]
    assert (root / trial / "checkpoint").is_dir()


def test_a_trial_continues_from_its_slot_checkpoint_in_a_new_pack(packed, folders, tmp_path):
    """The tuner was killed after step 3: a new pack (another slot, another neighbour) continues
    trial b from the slot it saved then, and it ends as it ended uninterrupted."""
    root, _ = packed
    with jax.default_matmul_precision("highest"):
        first = _runs(folders)
        first.start("b", TRIALS["b"], run_dir=tmp_path / "b", run_id="b", checkpoint_dir=tmp_path / "b.state",
                    restored=False)
        first.want("b")
        while "b" not in (reached := first.step()):
            pass
        assert [record["step"] for record in reached["b"]] == [3]
        second = _runs(folders)
        second.start("a", TRIALS["a"], run_dir=tmp_path / "a", run_id="a", checkpoint_dir=tmp_path / "a.state",
                     restored=False)
        run = second.start("b", TRIALS["b"], run_dir=tmp_path / "b", run_id="b", checkpoint_dir=tmp_path / "b.state",
                           restored=True)
        assert (run.slot, run.resumed_at) == (1, 3)
        _until_final(second, ["b"])
    resumed, whole = _manifest(tmp_path / "b"), _manifest(root / "b")
    assert resumed["resumed_at_step"] == 3
    for name in ("eval_loss", "train_loss"):
        assert resumed["metrics"][name] == pytest.approx(whole["metrics"][name], rel=1e-4)


def test_a_diverging_slot_fails_alone(folders, tmp_path):
    runs = _runs(folders)
    runs.start("fine", TRIALS["a"], run_dir=tmp_path / "fine", run_id="fine", checkpoint_dir=tmp_path / "f.state",
               restored=False)
    runs.start("wild", {**TRIALS["b"], "learning_rate": 1e30, "max_grad_norm": 1e30}, run_dir=tmp_path / "wild",
               run_id="wild", checkpoint_dir=tmp_path / "w.state", restored=False)
    failed = {}
    for _ in range(6):
        for trial in ("fine", "wild"):
            if trial not in failed:
                runs.want(trial)
        for trial, reached in runs.step().items():
            if isinstance(reached, Exception):
                failed[trial] = reached
    assert set(failed) == {"wild"} and isinstance(failed["wild"], SlotDiverged)
    runs.leave("wild")
    assert runs.has_room("next")
