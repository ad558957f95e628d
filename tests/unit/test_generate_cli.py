"""`tunix-tune generate`: what a model reference names, and hostile options refused in one line
before any model is loaded (no JAX)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli.generate import _Unknown, promoted_folder
from app.cli.main import cli


@pytest.mark.parametrize(("args", "message"), [
    (["--max-tokens", "0"], "--max-tokens must be between 1 and 2048, got 0"),
    (["--max-tokens", "1000000000"], "--max-tokens must be between 1 and 2048, got 1000000000"),
    (["--max-tokens", "-3"], "--max-tokens must be between 1 and 2048, got -3"),
    (["--temperature", "-0.5"], "--temperature must be between 0 (greedy) and 100, got -0.5"),
    (["--temperature", "nan"], "--temperature must be between 0 (greedy) and 100, got nan"),
])
def test_out_of_range_options_are_one_line_and_exit_1(args, message):
    done = CliRunner().invoke(cli, ["generate", "--model", "no-such-model", *args, "hello"])
    assert done.exit_code == 1
    assert done.output.strip() == f"error: {message}"  # refused before the unknown model is even looked up


@pytest.mark.parametrize("prompt", ["", "   \n\t"])
def test_an_empty_prompt_is_refused(prompt):
    done = CliRunner().invoke(cli, ["generate", "--model", "tiny-gemma3", prompt])
    assert done.exit_code == 1 and done.output.strip() == "error: the prompt is empty"


def test_an_unknown_model_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNIX_MODELS_DIR", str(tmp_path / "models"))
    (elsewhere := tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("TUNIX_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    from provisioning.paths import settings

    settings.cache_clear()  # this test's folders
    try:
        for reference in ("no-such-model", "../../etc", str(elsewhere)):
            done = CliRunner().invoke(cli, ["generate", "--model", reference, "hi"])
            assert done.exit_code == 1, done.output
            (line,) = done.output.strip().splitlines()
            assert line.startswith("error: ") and "Traceback" not in done.output
        assert "not a run folder (it has no manifest.json)" in line  # the last: an existing folder
    finally:
        settings.cache_clear()


def _registry(tmp_path):
    for version in ("1", "2", "10"):
        (tmp_path / "demo" / version).mkdir(parents=True)
    (tmp_path / "demo" / "staging-x").mkdir()  # not a version folder
    (tmp_path / "empty").mkdir()
    return tmp_path


def test_a_registry_name_is_its_latest_version_or_the_one_asked(tmp_path):
    registry = _registry(tmp_path)
    assert promoted_folder("demo", registry) == registry / "demo" / "10"  # numerically latest, not "2"
    assert promoted_folder("demo:2", registry) == registry / "demo" / "2"
    with pytest.raises(_Unknown, match=r"'demo' has no version 3; versions: 1, 2, 10"):
        promoted_folder("demo:3", registry)
    with pytest.raises(_Unknown, match=r"'empty' has no version \(any\); versions: none"):
        promoted_folder("empty", registry)


@pytest.mark.parametrize("reference", [
    "tiny-gemma3",  # a name the registry does not hold: a base model id
    "ollama:smollm2:135m", "google/gemma-3-270m", "Demo", "../demo", "demo/1", ".demo", "demo:1:2", "demo:v1",
])
def test_what_is_not_a_registry_reference_is_left_to_the_catalog(tmp_path, reference):
    assert promoted_folder(reference, _registry(tmp_path)) is None


def test_a_prompt_too_long_or_outside_the_vocabulary_is_refused_before_decoding():
    from training.generation import MAX_PROMPT_TOKENS, GenerationError, LoadedModel, render_prompt
    from training.tokenizer import CharTokenizer

    loaded = LoadedModel(model=None, tokenizer=CharTokenizer(), described="tiny-gemma3")  # no decoding reached
    rendered, ids = render_prompt(loaded, "a" * (MAX_PROMPT_TOKENS - 2))  # <bos> + text + "=": exactly the bound
    assert rendered.endswith("a=") and len(ids) == MAX_PROMPT_TOKENS
    with pytest.raises(GenerationError, match=f"the prompt is {MAX_PROMPT_TOKENS + 1} tokens with its chat "
                                              f"template; at most {MAX_PROMPT_TOKENS}"):
        render_prompt(loaded, "a" * (MAX_PROMPT_TOKENS - 1))
    with pytest.raises(GenerationError, match=r"cannot be encoded: characters outside the tokenizer's vocabulary: \['é'\]"):
        render_prompt(loaded, "café")
