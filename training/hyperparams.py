"""The hyperparameters a run accepts: names, types, defaults and bounds.

An unknown name is an error, never silently ignored: a typo in a search space would otherwise
tune nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# What a run continuing from another run's checkpoint (a PBT exploit) can take new values of:
# the optimizer's numbers. The others shape the model, the data order or the step count.
CHANGEABLE_ON_RESUME = ("learning_rate", "warmup_steps", "weight_decay", "max_grad_norm")


LORA_TARGET_SETS = ("all", "attention", "mlp")
# A pretrained checkpoint is tuned with LoRA of this rank unless a job sets lora_rank (0: full).
PRETRAINED_LORA_RANK = 8
# Past the hidden widths of the models we load, a rank adds parameters and memory, not expressiveness.
MAX_LORA_RANK = 1024


class UnknownHyperparameter(ValueError):
    pass


@dataclass(frozen=True)
class Hyperparameters:
    learning_rate: float = 3e-3
    batch_size: int = 64
    max_steps: int | None = 400  # None: train for num_epochs
    num_epochs: int = 1
    warmup_steps: int = 20
    weight_decay: float = 0.01
    lora_rank: int = 0  # 0: full fine-tuning; > 0: LoRA adapters through qwix
    lora_alpha: float = 16.0
    lora_targets: str = "all"  # which linear maps get adapters: "all", "attention" or "mlp"
    max_seq_length: int = 32
    seed: int = 0
    eval_every: int = 50  # steps between intermediate reports
    max_grad_norm: float = 1.0

    def __post_init__(self):
        checks = [
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
            (self.num_epochs >= 1, "num_epochs must be >= 1"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.lora_rank <= MAX_LORA_RANK, f"lora_rank must be between 0 and {MAX_LORA_RANK}"),
            (self.lora_alpha > 0, "lora_alpha must be > 0"),
            (self.max_seq_length >= 8, "max_seq_length must be >= 8"),
            (self.eval_every >= 1, "eval_every must be >= 1"),
            (self.max_grad_norm > 0, "max_grad_norm must be > 0"),
            (self.lora_targets in LORA_TARGET_SETS, f"lora_targets must be one of {', '.join(LORA_TARGET_SETS)}"),
        ]
        for ok, rule in checks:
            if not ok:
                raise ValueError(rule)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values: dict) -> "Hyperparameters":
        """Coerce values to each field's type; unknown names raise UnknownHyperparameter."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise UnknownHyperparameter(
                f"unknown hyperparameter(s) {', '.join(unknown)}; known: {', '.join(cls.names())}"
            )
        types = {f.name: f.type for f in fields(cls)}
        coerced = {}
        for name, value in values.items():
            kind = types[name]
            if value is None and "None" in kind:
                coerced[name] = None
            elif kind == "str":
                coerced[name] = str(value)
            elif "int" in kind:
                if float(value) != int(float(value)):
                    raise ValueError(f"{name} must be an integer, got {value!r}")
                coerced[name] = int(float(value))
            else:
                coerced[name] = float(value)
        return cls(**coerced)

    def as_dict(self) -> dict:
        return asdict(self)


def reports_per_run(values: dict) -> int:
    """How many results a run reports: one per eval_every steps, then the final evaluation.
    A run sized by epochs (max_steps None) is counted as 1000 steps: its length depends on
    the dataset."""
    hp = Hyperparameters.from_mapping({k: v for k, v in values.items() if k in ("max_steps", "eval_every")})
    return max(1, -(-(hp.max_steps or 1000) // hp.eval_every)) + 1
