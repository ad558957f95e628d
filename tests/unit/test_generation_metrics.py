"""Generation-based evaluation metrics (exact_match, contains) and the decode batch's pad id (no JAX)."""

from __future__ import annotations

import pytest

from training.catalog import EVALUATION_METRICS, METRIC_NAMES
from training.evaluate import answer_correctness, contains, exact_match, normalise_answer
from training.folders import Folders
from training.sampling import sampling_pad_id
from training.validate import validate_job


@pytest.mark.parametrize(("text", "normalised"), [
    ("The capital of France is Paris.", "the capital of france is paris"),
    ("  Paris!\n", "paris"),
    ("P1", "p1"),
    ("a,\tb   c", "a b c"),  # whitespace runs become one space
    ("Don't", "dont"),  # punctuation is removed, not made a space
    ("...", ""),
    ("Café", "café"),  # letters beyond ASCII are kept
])
def test_normalise_answer_ignores_case_punctuation_and_whitespace(text, normalised):
    assert normalise_answer(text) == normalised


def test_exact_match_is_equality_after_normalisation():
    predictions = ["Paris.", " paris ", "The capital of France is Paris.", "Lyon"]
    assert exact_match(predictions, ["Paris"] * 4) == 0.5
    # answer_correctness stays Tunix RT's strip + lower: "Paris." is not "Paris" there
    assert answer_correctness(predictions, ["Paris"] * 4) == 0.25


def test_contains_needs_the_reference_as_whole_words():
    assert contains(["The capital of France is Paris."], ["paris"]) == 1.0
    assert contains(["Parisian food"], ["Paris"]) == 0.0  # not a whole word
    assert contains(["new york city"], ["New  York"]) == 1.0
    assert contains(["York, New"], ["New York"]) == 0.0
    assert contains(["It is P1!", "tie", "P2"], ["P1", "P2", "P2"]) == pytest.approx(2 / 3)


def test_metrics_refuse_mismatched_lengths_and_score_nothing_as_zero():
    for metric in (exact_match, contains):
        assert metric([], []) == 0.0
        with pytest.raises(ValueError, match="2 predictions for 1 references"):
            metric(["a", "b"], ["a"])


def test_a_job_can_optimise_either_metric_and_trials_score_them_along_the_way():
    # EVALUATION_METRICS: the tuner asks run_pipeline for them in intermediate reports (trainable.py)
    for name in ("exact_match", "contains"):
        assert name in METRIC_NAMES and name in EVALUATION_METRICS
        assert validate_job("ungar_hcd-v1", "tiny-gemma3", name, {}, Folders()) == []
    assert validate_job("ungar_hcd-v1", "tiny-gemma3", "contain", {}, Folders())[0][0] == "metric_name"


class _Tokenizer:
    def __init__(self, pad_id, special_ids=()):
        self.pad_id, self.special_ids = pad_id, special_ids


def test_the_decode_pad_is_a_special_token_no_prompt_holds():
    smollm2 = _Tokenizer(pad_id=2, special_ids=(0, 2))  # pad <|im_end|>, which ends every chat turn
    assert sampling_pad_id(smollm2, [[1, 5, 2, 198], [1, 7]]) == 0  # <|endoftext|>
    assert sampling_pad_id(smollm2, [[1, 5, 198]]) == 2  # the tokenizer's own when no prompt holds it
    assert sampling_pad_id(_Tokenizer(pad_id=0), [[4, 5]]) == 0  # the character tokenizer (no special_ids)
    with pytest.raises(ValueError, match="none can pad them"):
        sampling_pad_id(_Tokenizer(pad_id=2, special_ids=(0, 2)), [[0, 2]])
