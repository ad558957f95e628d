"""The built-in models (training/model.py), trained from a seed with the character tokenizer."""

from __future__ import annotations

from training.memory import estimate
from training.model import BUILT_IN_MODELS
from training.sources.base import AvailableModel, ModelSource


class BuiltIn:
    kind = "built-in"

    def resolve(self, model_id: str) -> ModelSource | None:
        return ModelSource(model_id, self.kind) if model_id in BUILT_IN_MODELS else None

    def available(self, batch_size: int, seq_len: int) -> list[AvailableModel]:
        from training.tokenizer import CharTokenizer

        vocab = CharTokenizer().vocab_size
        found = []
        for name, built_in in BUILT_IN_MODELS.items():
            params = built_in.parameter_count(vocab)
            found.append(AvailableModel(ModelSource(name, self.kind), "gemma3", params, estimate(
                params, vocab, built_in.embed_dim, built_in.num_layers, batch_size, seq_len)))
        return found
