"""Process-wide JAX settings for training runs: CPU platform and a persistent compilation cache.

Every trial builds a fresh PeftTrainer, which re-jits its train step; the programs only differ in
their runtime inputs (weights, optimizer scalars), so a persistent cache turns all but the first
compile of a shape into a disk read. The thresholds are lowered to zero because the tiny model's
programs compile in seconds and are small: with JAX's defaults they would never be cached.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[1] / ".state" / "jax-cache"
_configured: Path | None = None  # JAX's configuration is process-wide; so is this record of it


def configure_jax(cache_dir: Path | None = None) -> Path:
    """Configure JAX once per process; returns the compilation cache directory in use.

    Idempotent: a repeated call with the same (or no) directory does nothing. A call naming
    another directory switches the cache there (tests use throwaway directories).
    """
    global _configured
    target = Path(cache_dir) if cache_dir is not None else (_configured or DEFAULT_CACHE_DIR)
    if _configured == target:
        return target
    # Must be set before JAX creates its backend; harmless afterwards. A run on a GPU sets
    # JAX_PLATFORMS=cuda first (use_accelerator).
    platforms = os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    target.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_platforms", platforms)
    jax.config.update("jax_compilation_cache_dir", str(target))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    if _configured is not None:
        compilation_cache.reset_cache()  # JAX opens the cache lazily, once: re-open at the new path.
    _configured = target
    return target


def use_accelerator(gpus: float) -> None:
    """Before JAX starts: run on the GPU(s) Ray gave this process (CUDA_VISIBLE_DEVICES) when
    gpus > 0, taking at most that share of a device's memory when it is a fraction."""
    if gpus <= 0:
        return
    os.environ["JAX_PLATFORMS"] = "cuda"
    if gpus < 1:
        os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 * gpus:.3f}"


def device_peak_mb() -> float | None:
    """Peak memory JAX used on the first accelerator device, in MB; None on CPU."""
    import jax

    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    return stats["peak_bytes_in_use"] / 2**20 if stats and "peak_bytes_in_use" in stats else None


class CompileTimer:
    """Seconds JAX spends compiling with XLA, or loading compiled programs from the persistent
    cache instead, while the `with` block runs (tracing and lowering are not compiling)."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.seconds = 0.0

    def _on_duration(self, event: str, duration: float, **_: object) -> None:
        if event == self.EVENT:
            self.seconds += duration

    def __enter__(self) -> "CompileTimer":
        import jax.monitoring

        jax.monitoring.register_event_duration_secs_listener(self._on_duration)
        return self

    def __exit__(self, *exc) -> None:
        import jax.monitoring

        try:
            jax.monitoring.unregister_event_duration_listener(self._on_duration)
        except (AssertionError, ValueError):
            pass  # Tunix clears every listener when its trainer closes
