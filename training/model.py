"""Which models a run can use, and how to build them.

Built-in models are Tunix architectures with small configs, initialised from a seed: they need no
download, so the service works offline (training.catalog resolves any other id). JAX and Tunix
are imported inside the functions that need them, so importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flax import nnx
    from tunix.models.gemma3.model import ModelConfig



@dataclass(frozen=True)
class BuiltInModel:
    """A Gemma3 shape small enough to train from scratch on two CPU cores in under a minute."""

    num_layers: int
    embed_dim: int
    hidden_dim: int
    num_heads: int
    head_dim: int
    num_kv_heads: int
    # Gemma3 local-attention layers refuse to build without a window; wider than any sequence
    # these models see, so attention is effectively global.
    sliding_window_size: int = 512

    def parameter_count(self, vocab_size: int) -> int:
        """Embedding, per layer the attention and GeGLU maps with their norms, final norm."""
        e, d = self.embed_dim, self.head_dim
        attention = e * d * (2 * self.num_heads + 2 * self.num_kv_heads) + 2 * d
        per_layer = attention + 3 * e * self.hidden_dim + 4 * e
        return vocab_size * e + self.num_layers * per_layer + e

    def config(self, vocab_size: int) -> "ModelConfig":
        import jax.numpy as jnp
        from tunix.models.gemma3.model import ModelConfig

        return ModelConfig(
            num_layers=self.num_layers, num_embed=vocab_size, embed_dim=self.embed_dim,
            hidden_dim=self.hidden_dim, num_heads=self.num_heads, head_dim=self.head_dim,
            num_kv_heads=self.num_kv_heads, sliding_window_size=self.sliding_window_size,
            # float32: bfloat16 is slower on CPU and too coarse for a model this small.
            param_dtype=jnp.float32,
        )


BUILT_IN_MODELS: dict[str, BuiltInModel] = {
    # 2 layers, embed 64, 4 heads of 16: 88,832 parameters with the 98-character vocabulary.
    "tiny-gemma3": BuiltInModel(num_layers=2, embed_dim=64, hidden_dim=128, num_heads=4, head_dim=16, num_kv_heads=4),
}


def is_built_in(model_id: str) -> bool:
    return model_id in BUILT_IN_MODELS


def build_model(model_id: str, vocab_size: int, seed: int) -> tuple["nnx.Module", "ModelConfig"]:
    """A freshly initialised built-in model; the same seed gives the same weights."""
    import jax
    from flax import nnx
    from tunix.models.gemma3.model import Gemma3

    if not is_built_in(model_id):
        raise ValueError(f"{model_id!r} is not a built-in model; built-in: {', '.join(BUILT_IN_MODELS)}")
    config = BUILT_IN_MODELS[model_id].config(vocab_size)
    model = Gemma3(config, rngs=nnx.Rngs(params=seed))
    # Tunix initialises feed-forward kernels to zero (it expects pretrained weights); with all
    # three at zero their gradients are zero too, so training from scratch never uses them.
    init = jax.nn.initializers.lecun_normal()
    key = jax.random.fold_in(jax.random.key(seed), 1)
    for layer in model.layers:
        for proj in (layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj):
            key, sub = jax.random.split(key)
            proj.kernel.set_value(init(sub, proj.kernel.shape, config.param_dtype))
    return model, config


def apply_lora(model: "nnx.Module", rank: int, alpha: float, seed: int, module_path: str) -> "nnx.Module":
    """Wrap the linear maps `module_path` matches (training.base_model.lora_modules) in LoRA
    adapters through qwix; only the adapters are then trained."""
    import qwix
    from flax import nnx

    provider = qwix.LoraProvider(module_path=module_path, rank=rank, alpha=alpha)
    return qwix.apply_lora_to_model(model, provider, rngs=nnx.Rngs(seed), **model.get_model_input())


def merge_lora(lora_model: "nnx.Module", base: "nnx.Module", rank: int, alpha: float) -> None:
    """Fold trained adapters into `base`, the model `apply_lora` cloned, in place.

    qwix adds (x·A·B)·alpha/rank to each wrapped product at run time; since that is linear in
    x, W + A·B·alpha/rank gives the same outputs. Merging lets a LoRA run hand back an ordinary
    model: evaluation and checkpoints never need to know adapters were used.
    """
    import jax.numpy as jnp
    from flax import nnx

    base_modules = dict(nnx.iter_modules(base))
    for path, module in nnx.iter_modules(lora_model):
        for name in [k.removesuffix("_lora_a") for k in vars(module) if k.endswith("_lora_a")]:
            a, b = getattr(module, f"{name}_lora_a")[...], getattr(module, f"{name}_lora_b")[...]
            weight = getattr(base_modules[path], name)
            lora_einsum = getattr(module, f"{name}_lora_einsum_str", None)
            if lora_einsum:  # an Einsum layer: "lhs,A,B->out"; the weight's subscripts are its own
                _, a_sub, b_sub = lora_einsum.split("->")[0].split(",")
                w_sub = module.einsum_str.split("->")[0].split(",")[1]
                delta = jnp.einsum(f"{a_sub},{b_sub}->{w_sub}", a, b)
            else:  # a dot_general (nnx.Linear): A is (inputs, rank), B is (rank, outputs)
                delta = (a.reshape(-1, rank) @ b.reshape(rank, -1)).reshape(weight.shape)
            weight.set_value(weight[...] + delta * (alpha / rank))

