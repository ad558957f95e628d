"""Packed jobs on the real stack: LoRA trials of one job run as the slots of the job's pack actor,
and every trial is still a Ray Tune trial with its own reports, checkpoints, decisions and cost.
An ASHA job stops weak trials and refills their slots; a PBT job continues weak trials from
strong ones' checkpoints, across slots; the tuner killed with -9 resumes every packed trial from
its own checkpoint."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import httpx

from adapters.database import make_engine
from tests.conftest import Process
from tests.support.replay_check import assert_replay_equals_live, drop_schema
from tests.support.service_stack import start_job, wait_for_job
from tests.support.waiting import wait_until

# LoRA trials of the built-in model (one seed: its weights are drawn from it), ranks 2 and 4.
FIXED = {"eval_every": 10, "batch_size": 16, "max_seq_length": 32, "seed": 0, "lora_alpha": 8.0}
SPACE = {"learning_rate": {"type": "loguniform", "min": 1e-5, "max": 3e-2},
         "lora_rank": {"type": "choice", "values": [2, 4]}}


def _events(stack: dict, job_id: str) -> list[dict]:
    return httpx.get(f"{stack['url']}/api/tuning/jobs/{job_id}/events", timeout=30).json()


def _decisions(trail: list[dict], kind: str) -> list[dict]:
    return [e["payload"] for e in trail if e["type"] == "DecisionMade" and e["payload"]["kind"] == kind]


def _packed_as_planned(job: dict, trail: list[dict], slots: int) -> None:
    """The packing decision is on the log; every trial ran in a slot of the pack and its run
    folder says which; never more trials in slots at once than the pack has."""
    (packing,) = _decisions(trail, "packing")
    assert packing["outcome"] == "pack" and packing["inputs"]["slots"] == slots and packing["inputs"]["rank"] == 4
    assert packing["summary"].startswith(f"trials run {slots} to a pack"), packing["summary"]
    for trial in job["trials"]:
        assert trial["metrics"]["pack_slots"] == slots and 0 <= trial["metrics"]["pack_slot"] < slots, trial
        if trial["status"] == "completed":
            manifest = json.loads((Path(trial["artifact_path"]) / "manifest.json").read_text())
            assert manifest["pack"] == {"slots": slots, "slot": trial["metrics"]["pack_slot"]}
            assert manifest["hyperparameters"]["lora_rank"] == trial["params"]["lora_rank"]
    running = set()
    for event in trail:  # the slots in use, replayed from the log
        if event["type"] != "TrialUpdated":
            continue
        payload = event["payload"]
        (running.add if payload["status"] == "running" else running.discard)(payload["trial_id"])
        assert len(running) <= slots


def test_a_packed_asha_job_stops_weak_trials_and_refills_their_slots(tuning_stack):
    job_id = start_job(
        tuning_stack["url"], name="packed-asha", num_samples=6, max_concurrent_trials=3, scheduler="asha",
        metric_name="eval_loss", metric_mode="min", seed=3, packing={"max_trials": 3},
        fixed_params={**FIXED, "max_steps": 60}, search_space=SPACE,
    )
    job = wait_for_job(tuning_stack["url"], job_id, 900, tuning_stack["procs"])
    assert job["status"] == "completed", job["error"]
    trail = _events(tuning_stack, job_id)
    assert len(job["trials"]) == 6
    _packed_as_planned(job, trail, 3)
    stopped = [t for t in job["trials"] if t["status"] == "stopped"]
    assert stopped, "ASHA stopped no trial early"
    rungs = _decisions(trail, "rung")
    assert {d["trial_id"] for d in rungs if d["outcome"] == "stop"} == {t["trial_id"] for t in stopped}
    # A stopped trial's slot went to a later trial: more trials ran than the pack has slots.
    assert {t["metrics"]["pack_slot"] for t in job["trials"]} == {0, 1, 2}
    finished = [t for t in job["trials"] if t["status"] == "completed"]
    assert job["best_trial_id"] == min(finished, key=lambda t: t["metrics"]["eval_loss"])["trial_id"]
    # A packed trial is charged its share of the pack's reservation (1 cpu shared by 3 slots).
    for trial in job["trials"]:
        assert trial["cpu_s"] is not None and trial["cpu_s"] > 0


def test_a_packed_pbt_job_continues_weak_trials_from_strong_ones(tuning_stack):
    job_id = start_job(
        tuning_stack["url"], name="packed-pbt", num_samples=4, max_concurrent_trials=4, scheduler="pbt",
        metric_name="eval_loss", metric_mode="min", seed=5, packing={"max_trials": "auto"},
        fixed_params={**FIXED, "max_steps": 80, "lora_rank": 4},
        search_space={"learning_rate": SPACE["learning_rate"]},
    )
    job = wait_for_job(tuning_stack["url"], job_id, 900, tuning_stack["procs"])
    assert job["status"] == "completed", job["error"]
    trail = _events(tuning_stack, job_id)
    assert len(job["trials"]) == 4 and all(t["status"] == "completed" for t in job["trials"])
    _packed_as_planned(job, trail, 4)  # "auto" on CPU: 4
    exploits = _decisions(trail, "exploit")
    assert exploits, "PBT exploited no trial"
    exploited = {d["trial_id"] for d in exploits}
    for decision in exploits:
        assert decision["inputs"]["source_trial"] != decision["trial_id"] and decision["inputs"]["checkpoint"]
    manifests = [json.loads((Path(t["artifact_path"]) / "manifest.json").read_text())
                 for t in job["trials"] if t["trial_id"] in exploited]
    # An exploited trial continued from the donor's slot checkpoint, with its new learning rate.
    assert any(m["resumed_at_step"] > 0 for m in manifests), manifests
    for trial in job["trials"]:
        if trial["trial_id"] in exploited:
            new = [d["inputs"]["new"]["learning_rate"] for d in exploits if d["trial_id"] == trial["trial_id"]]
            assert trial["params"]["learning_rate"] == new[-1]
    assert job["best_trial_id"] == min(job["trials"], key=lambda t: t["metrics"]["eval_loss"])["trial_id"]


def test_a_tuner_killed_with_a_pack_running_resumes_every_packed_trial(tuning_stack):
    base = tuning_stack["url"]
    tuner = next(p for p in tuning_stack["procs"] if p.log_path.name.startswith("consumers.tuner"))
    job_id = start_job(
        base, name="packed-crash", num_samples=3, max_concurrent_trials=2, packing={"max_trials": 2},
        fixed_params={**FIXED, "max_steps": 100}, search_space=SPACE,
    )

    def two_halfway():
        trials = httpx.get(f"{base}/api/tuning/jobs/{job_id}", timeout=10).json()["trials"]
        halfway = [t for t in trials if t["status"] == "running" and 2 <= (t["iteration"] or 0) <= 7]
        return len(halfway) == 2 and halfway
    halfway = wait_until(two_halfway, 600, "two packed trials halfway")
    os.kill(tuner.proc.pid, signal.SIGKILL)
    tuner.proc.wait(timeout=30)
    tuner.log.close()
    restarted = Process("consumers.tuner", tuner.env, tuner.log_path.parent)
    tuning_stack["procs"][tuning_stack["procs"].index(tuner)] = restarted

    job = wait_for_job(base, job_id, 900, tuning_stack["procs"])
    assert job["status"] == "completed", job["error"]
    assert len(job["trials"]) == 3 and all(t["status"] == "completed" for t in job["trials"])
    # Both trials in the pack continued from their own slot checkpoints, not from step 0.
    for trial in halfway:
        manifest = json.loads((Path(trial["artifact_path"]) / "manifest.json").read_text())
        assert manifest["resumed_at_step"] > 0 and manifest["pack"]["slots"] == 2, manifest
    trail = _events(tuning_stack, job_id)
    assert len(_decisions(trail, "packing")) == 1  # decided once, not again by the next owner
    assert [e["type"] for e in trail].count("JobCompleted") == 1

    async def replayed():  # the read model the crash left equals the one the log alone gives
        live = make_engine(tuning_stack["env"]["DATABASE_URL"])
        try:
            await drop_schema(live, await assert_replay_equals_live(tuning_stack["env"], live))
        finally:
            await live.dispose()
    asyncio.run(replayed())
