"""Packed LoRA trials (training/packed.py) give each trial what it gets alone.

"Alone" is training/train.train, the trainer every unpacked trial runs. The pack runs the same
arithmetic batched over the slot axis, so the numbers agree up to float32 rounding: losses within
a relative 1e-4 and adapters within 1e-4 after 6 steps (measured: losses within 1.1e-7 relative,
adapters within 1.8e-6 absolute; eval losses equal), at matmul
precision "highest".
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from training.base_model import load_base, lora_modules
from training.catalog import resolve_in
from training.datasets import load_dataset
from training.folders import Folders
from training.hyperparams import Hyperparameters
from training.model import apply_lora
from training.packed import Pack, pack_key, pack_model, train_pack
from training.train import train

MODULES = lora_modules("gemma3", "all")  # every attention and MLP projection
COMMON = {"max_steps": 6, "eval_every": 6, "batch_size": 4, "max_seq_length": 48, "lora_rank": 4, "lora_alpha": 8.0}
TRIALS = [  # different learning rates, schedules, weight decays, clipping, seeds, ranks and alphas
    {**COMMON, "learning_rate": 3e-3, "seed": 1},
    {**COMMON, "learning_rate": 1e-2, "warmup_steps": 1, "seed": 2, "lora_rank": 2, "lora_alpha": 16.0},
    {**COMMON, "learning_rate": 5e-4, "weight_decay": 0.2, "seed": 3, "lora_rank": 8},
    {**COMMON, "learning_rate": 2e-2, "max_grad_norm": 0.05, "seed": 4, "lora_alpha": 2.0},
]
MAX_RANK = 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folders = Folders(jax_cache=tmp_path_factory.mktemp("jax-cache"))
    source = resolve_in("tiny-gemma3", folders)
    dataset = load_dataset("ungar_hcd-v1", folders.datasets)
    return source, dataset


def _base(source):
    return load_base(source, seed=0)  # every trial here shares this base: the pack's frozen weights


def _adapters(base, hp: Hyperparameters) -> nnx.State:
    return nnx.state(apply_lora(base.model, hp.lora_rank, hp.lora_alpha, hp.seed, MODULES), nnx.LoRAParam)


def _alone(source, dataset, config: dict, workdir) -> tuple[list[float], float, nnx.State]:
    import json

    base = _base(source)
    kept = {}
    hp = Hyperparameters.from_mapping(config)
    result = train(base.model, base.tokenizer, dataset, hp, lambda _: None, workdir, lora_modules=MODULES,
                   before_merge=lambda lora_model: kept.update(adapters=nnx.state(lora_model, nnx.LoRAParam)))
    return json.loads((workdir / "step_losses.json").read_text()), result.eval_loss, kept["adapters"]


def _pack(source, slots: int, rank: int = MAX_RANK) -> tuple[Pack, object]:
    base = _base(source)
    return Pack(pack_model(base.model, rank, MODULES), slots, base.tokenizer.pad_id), base


def _close(a: nnx.State, b: nnx.State, tolerance: float = 1e-4) -> bool:
    return all(np.allclose(x, y, rtol=tolerance, atol=tolerance) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _packed(source, dataset, configs: list[dict], slots: int, rank: int = MAX_RANK):
    pack, base = _pack(source, slots, rank)
    hps = [Hyperparameters.from_mapping(c) for c in configs]
    return train_pack(pack, base.tokenizer, dataset, [(hp, _adapters(base, hp)) for hp in hps])


@pytest.fixture(scope="module")
def four(setup):
    """The four trials as the slots of one pack, computed once for the tests below."""
    source, dataset = setup
    with jax.default_matmul_precision("highest"):
        return _packed(source, dataset, TRIALS, slots=4)


@pytest.fixture(scope="module")
def alone(setup, tmp_path_factory):
    """Each trial alone through training/train.train, computed once."""
    source, dataset = setup
    with jax.default_matmul_precision("highest"):
        return [_alone(source, dataset, config, tmp_path_factory.mktemp(f"alone-{n}")) for n, config in enumerate(TRIALS)]


@pytest.mark.parametrize("slot", range(len(TRIALS)))
def test_each_slot_of_a_pack_of_four_equals_its_trial_alone(four, alone, slot):
    packed, (losses, eval_loss, adapters) = four[slot], alone[slot]
    assert len(packed.losses) == len(losses) == 6
    assert np.allclose(packed.losses, losses, rtol=1e-4), (packed.losses, losses)
    assert np.isclose(packed.eval_loss, eval_loss, rtol=1e-4)
    assert _close(packed.adapters, adapters)
    assert packed.losses[-1] < packed.losses[0]  # it trained


def test_a_pack_of_one_equals_the_unpacked_trial(setup, alone):
    source, dataset = setup
    with jax.default_matmul_precision("highest"):  # rank 2, padded to the pack's 8 (slot 2 of `four` fills rank 8)
        (single,) = _packed(source, dataset, TRIALS[1:2], slots=1)
    losses, _, adapters = alone[1]
    assert np.allclose(single.losses, losses, rtol=1e-4) and _close(single.adapters, adapters)


def test_slot_order_does_not_matter(setup, four):
    source, dataset = setup
    with jax.default_matmul_precision("highest"):
        backward = _packed(source, dataset, TRIALS[::-1], slots=4)[::-1]
    for a, b in zip(four, backward, strict=True):
        assert np.allclose(a.losses, b.losses, rtol=1e-6) and _close(a.adapters, b.adapters, 1e-6)


def test_a_diverging_slot_fails_alone(setup):
    source, dataset = setup
    pack, base = _pack(source, 3)
    hps = [Hyperparameters.from_mapping(c) for c in TRIALS[:3]]
    healthy = train_pack(pack, base.tokenizer, dataset, [(hp, _adapters(base, hp)) for hp in hps])
    poisoned = [(hp, _adapters(base, hp)) for hp in hps]
    poisoned[1] = (hps[1], jax.tree.map(lambda a: a * np.nan, poisoned[1][1]))  # slot 1 diverged
    sick = train_pack(pack, base.tokenizer, dataset, poisoned)
    assert all(np.isnan(sick[1].losses))
    for slot in (0, 2):  # the neighbours' numbers do not change
        assert sick[slot].losses == healthy[slot].losses and _close(sick[slot].adapters, healthy[slot].adapters, 0)


def test_a_refilled_slot_starts_clean_and_a_pbt_copy_continues_the_source(setup):
    source, dataset = setup
    pack, base = _pack(source, 2)
    hps = [Hyperparameters.from_mapping(c) for c in TRIALS[:2]]
    # Slot 0 ran (and was stopped) before: refilling it gives the trial it would get in a new pack.
    train_pack(pack, base.tokenizer, dataset, [(hps[1], _adapters(base, hps[1])), (hps[0], _adapters(base, hps[0]))])
    refilled = train_pack(pack, base.tokenizer, dataset, [(hp, _adapters(base, hp)) for hp in hps])
    fresh_pack, _ = _pack(source, 2)
    fresh = train_pack(fresh_pack, base.tokenizer, dataset, [(hp, _adapters(base, hp)) for hp in hps])
    assert [r.losses for r in refilled] == [r.losses for r in fresh]

    # After a PBT copy of slot 0 into slot 1, slot 1's next step is slot 0's.
    batch = next(iter(_batches(base, dataset, hps[0])))
    pack.copy(0, 1)
    losses = pack.step(np.stack([batch.input_tokens] * 2), np.stack([batch.input_mask] * 2))
    assert losses[0] == losses[1] and _close(pack.slot_adapters(0), pack.slot_adapters(1), 0)


def _batches(base, dataset, hp):
    from training.train import train_batches, encode_examples

    return train_batches(*encode_examples(dataset.train, base.tokenizer, hp.max_seq_length), hp.batch_size, 1, 0)


def test_only_trials_of_one_program_pack_together_and_ranks_up_to_the_packs(setup):
    source, dataset = setup
    pack, base = _pack(source, 2, rank=4)
    other_batch = Hyperparameters.from_mapping({**COMMON, "batch_size": 8})
    assert pack_key(other_batch) != pack_key(Hyperparameters.from_mapping(COMMON))
    assert pack_key(Hyperparameters.from_mapping(TRIALS[2])) == pack_key(Hyperparameters.from_mapping(COMMON))
    with pytest.raises(ValueError, match="one program"):
        train_pack(pack, base.tokenizer, dataset, [(Hyperparameters.from_mapping(COMMON), None), (other_batch, None)])
    too_large = Hyperparameters.from_mapping(TRIALS[2])  # rank 8 in a pack built for 4
    with pytest.raises(ValueError, match="lora_rank 8 does not fit"):
        train_pack(pack, base.tokenizer, dataset, [(too_large, _adapters(base, too_large))])


def test_a_trial_saved_from_one_pack_continues_in_another_pack_of_another_rank(setup, tmp_path):
    """What a tuner killed with -9 (or a PBT exploit) needs: a slot's trial continues elsewhere."""
    from training.train import train_batches, encode_examples

    source, dataset = setup
    hp = Hyperparameters.from_mapping(TRIALS[1])  # rank 2
    with jax.default_matmul_precision("highest"):
        straight, base = _pack(source, 1, rank=8)
        batches = list(train_batches(*encode_examples(dataset.train, base.tokenizer, hp.max_seq_length),
                                      hp.batch_size, 6, hp.seed))
        straight.fill(0, _adapters(base, hp), hp, total_steps=6)
        expected = [straight.step(b.input_tokens[None], b.input_mask[None])[0] for b in batches]

        first, _ = _pack(source, 2, rank=8)
        first.fill(1, _adapters(base, hp), hp, total_steps=6)
        for b in batches[:3]:
            first.step(np.stack([b.input_tokens] * 2), np.stack([b.input_mask] * 2))
        first.save_slot(1, tmp_path / "trial")
        second, _ = _pack(source, 3, rank=4)  # another pack, another rank, another slot
        second.restore(2, tmp_path / "trial")
        resumed = [second.step(np.stack([b.input_tokens] * 3), np.stack([b.input_mask] * 3))[2] for b in batches[3:]]
    assert np.allclose(resumed, expected[3:], rtol=1e-5), (resumed, expected[3:])
    difference = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(
        jax.tree.leaves(second.slot_adapters(2)), jax.tree.leaves(straight.slot_adapters(0)), strict=True))
    assert difference < 1e-4, difference
    small, _ = _pack(source, 1, rank=1)
    with pytest.raises(ValueError, match="larger adapters"):
        small.restore(0, tmp_path / "trial")
