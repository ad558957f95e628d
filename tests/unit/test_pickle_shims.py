"""Ray pickles a running experiment's searcher by its class's module path, and experiments saved
by an earlier tuner must still restore after the searchers moved to service/search/. The old
module paths (service.searchers, service.steered_search, consumers.tuner.steering and
consumers.tuner.experiment._TPE) are shims that must keep naming the moved classes."""

from __future__ import annotations

import pickle
import uuid

import pytest

import consumers.tuner.experiment as experiment
import consumers.tuner.steering as old_tuner_steering
import service.searchers as old_searchers
import service.steered_search as old_steered_search
from service.search import searchers, steered_search

# (old module path, name, the class it must load as)
OLD_NAMES = [
    ("service.searchers", "TPE", searchers.TPE),
    ("service.steered_search", "SteeredSearch", steered_search.SteeredSearch),
    ("service.steered_search", "SteeredVariants", steered_search.SteeredVariants),
    ("consumers.tuner.steering", "SteeredSearch", steered_search.SteeredSearch),
    ("consumers.tuner.steering", "SteeredVariants", steered_search.SteeredVariants),
    ("consumers.tuner.experiment", "_TPE", searchers.TPE),
]


def test_shims_name_the_moved_code():
    assert old_searchers.TPE is searchers.TPE
    for name in ("param_space", "ray_domain", "search_algorithm", "searcher_seed", "tpe"):
        assert getattr(old_searchers, name) is getattr(searchers, name)
    assert old_steered_search.SteeredSearch is steered_search.SteeredSearch
    assert old_steered_search.SteeredVariants is steered_search.SteeredVariants
    assert old_steered_search.UNBOUNDED_SAMPLES == steered_search.UNBOUNDED_SAMPLES
    assert old_tuner_steering.SteeredSearch is steered_search.SteeredSearch
    assert old_tuner_steering.SteeredVariants is steered_search.SteeredVariants
    assert experiment._TPE is searchers.TPE


@pytest.mark.parametrize("cls", [old_searchers.TPE, old_steered_search.SteeredSearch,
                                 old_steered_search.SteeredVariants, old_tuner_steering.SteeredSearch,
                                 experiment._TPE])
def test_classes_from_the_shims_round_trip(cls):
    assert pickle.loads(pickle.dumps(cls)) is cls


@pytest.mark.parametrize(("module", "name", "cls"), OLD_NAMES)
def test_a_class_pickled_under_its_old_path_loads(module, name, cls):
    old = f"c{module}\n{name}\n.".encode()  # GLOBAL opcode, as an earlier tuner wrote it
    assert pickle.loads(old) is cls


def _searcher_pickled_under(module: str) -> tuple[bytes, steered_search.SteeredVariants]:
    job_id = uuid.UUID(int=7)
    searcher = steered_search.SteeredVariants(job_id, ("lr",), [{"lr": 0.1}], "random", random_state=3)
    data = pickle.dumps(searcher, protocol=0)  # text opcodes: the module path can be rewritten in place
    new = b"service.search.steered_search\n"
    assert data.count(new) == 1
    return data.replace(new, module.encode() + b"\n"), searcher


@pytest.mark.parametrize("module", ["service.steered_search", "consumers.tuner.steering"])
def test_a_searcher_saved_under_an_old_path_restores(module):
    data, saved = _searcher_pickled_under(module)
    assert b"service.search" not in data
    restored = pickle.loads(data)
    assert type(restored) is steered_search.SteeredVariants
    assert (restored.job_id, restored._searched, restored._tried, restored._seed) == (
        saved.job_id, saved._searched, saved._tried, saved._seed)
