"""A GGUF file's header (metadata and tensor table), read with bounds, without reading the weights.

gguf.GGUFReader parses every token string into its own numpy array (3 s for a 49k-token vocabulary)
and trusts the counts it reads. A file named in a job is hostile until checked, and listing must stay
fast: so this reader streams the header from a regular file (training/safe_files.open_regular), bounds
every count and length, and checks that each tensor's bytes lie inside the file (a truncated download
is refused here, not half-way through a conversion).
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from training.hf_checkpoint import BrokenCheckpoint
from training.safe_files import UnreadableFile, open_regular

MAGIC = b"GGUF"
# A GGUF file is as large as the model; what is read of it here is the header only.
GGUF_FILE_BYTES = 2**40
HEADER_BYTES = 256 * 2**20  # a 256k-token vocabulary with its merges is ~10 MB
_MAX_KV, _MAX_TENSORS, _MAX_ARRAY, _MAX_STRING, _MAX_DIMS = 2**16, 2**20, 2**24, 2**24, 4
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32, 6: np.float32,
          7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}
_STRING, _ARRAY = 8, 9


class BrokenGguf(BrokenCheckpoint):
    """The GGUF file cannot be used: truncated, corrupt, or what it holds is not supported; says why."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # GGUF order: the fastest-varying dimension first (numpy's is reversed)
    qtype: GGMLQuantizationType
    offset: int  # from the start of the file
    nbytes: int

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class GgufHeader:
    path: Path
    file_size: int
    metadata: dict[str, Any]  # numbers, strings, bools; arrays of strings as lists, of numbers as numpy arrays
    tensors: dict[str, TensorInfo]

    @property
    def architecture(self) -> str | None:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else None

    def arch_value(self, key: str, default=None):
        """`<architecture>.<key>` from the metadata."""
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def parameters(self) -> int:
        return sum(t.n_elements for name, t in self.tensors.items() if name != "rope_freqs.weight")

    @property
    def tensor_types(self) -> dict[str, int]:
        """Quantization type name -> how many tensors are stored so."""
        return dict(Counter(t.qtype.name for t in self.tensors.values()))

    @property
    def quantization(self) -> str:
        """What llama.cpp calls the file's type (general.file_type, e.g. Q4_1, Q4_K_M), else the type
        most of the weights are stored in."""
        file_type = self.metadata.get("general.file_type")
        try:
            return LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except (TypeError, ValueError):
            matrices = Counter(t.qtype.name for t in self.tensors.values() if len(t.shape) > 1)
            return matrices.most_common(1)[0][0] if matrices else "F32"


def read_header(path: Path) -> GgufHeader:
    """The checked header; BrokenGguf naming the file and the problem otherwise."""
    try:
        with open_regular(path, GGUF_FILE_BYTES) as f:
            return header_of(f, path)
    except UnreadableFile as exc:
        raise BrokenGguf(path, exc.problem) from None


def header_of(f: BinaryIO, path: Path) -> GgufHeader:
    """The header of the file open as `f` (from its start), read with bounds; BrokenGguf otherwise."""
    try:
        f.seek(0)
        return _Parser(f, path, os.fstat(f.fileno()).st_size).header()
    except (struct.error, EOFError):
        raise BrokenGguf(path, "truncated: the file ends inside its header") from None
    except (UnicodeDecodeError, OverflowError, ValueError) as exc:
        if isinstance(exc, BrokenCheckpoint):
            raise
        raise BrokenGguf(path, f"corrupt header ({type(exc).__name__}: {exc})") from None


class _Parser:
    def __init__(self, f: BinaryIO, path: Path, size: int):
        self.f, self.path, self.size, self.read_bytes = f, path, size, 0

    def fail(self, problem: str):
        raise BrokenGguf(self.path, problem)

    def take(self, n: int) -> bytes:
        self.read_bytes += n
        if self.read_bytes > HEADER_BYTES:
            self.fail(f"header larger than the {HEADER_BYTES // 2**20} MiB read from a GGUF file")
        data = self.f.read(n)
        if len(data) != n:
            raise EOFError
        return data

    def scalar(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def count(self, limit: int, what: str) -> int:
        n = self.scalar("<Q")
        if n > limit:
            self.fail(f"{what} is {n:,}, more than the {limit:,} a GGUF header is read with")
        return n

    def string(self) -> str:
        return self.take(self.count(_MAX_STRING, "a string's length")).decode("utf-8")

    def value(self, vtype: int, depth: int = 0):
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item = self.scalar("<I")
            n = self.count(_MAX_ARRAY, "an array's length")
            if item in _NUMPY:
                dtype = np.dtype(_NUMPY[item]).newbyteorder("<")
                return np.frombuffer(self.take(n * dtype.itemsize), dtype=dtype)
            if item == _STRING:
                return [self.string() for _ in range(n)]
            if item == _ARRAY:  # arrays of arrays exist; a deep nest is only an attack on the stack
                if depth >= 2:
                    self.fail("metadata arrays nested more than 3 deep")
                return [self.value(_ARRAY, depth + 1) for _ in range(n)]
        self.fail(f"unknown metadata value type {vtype}")

    def header(self) -> GgufHeader:
        if self.take(4) != MAGIC:
            self.fail("not a GGUF file (no GGUF magic at its start)")
        version = self.scalar("<I")
        if version not in (2, 3):
            self.fail(f"GGUF version {version} is not supported (2 and 3 are)")
        n_tensors = self.count(_MAX_TENSORS, "the tensor count")
        n_kv = self.count(_MAX_KV, "the metadata count")
        metadata = {}
        for _ in range(n_kv):
            key = self.string()
            metadata[key] = self.value(self.scalar("<I"))
        infos = []
        for _ in range(n_tensors):
            name = self.string()
            n_dims = self.scalar("<I")
            if not 1 <= n_dims <= _MAX_DIMS:
                self.fail(f"tensor {name!r} has {n_dims} dimensions")
            shape = tuple(self.scalar("<Q") for _ in range(n_dims))
            type_id, offset = self.scalar("<I"), self.scalar("<Q")
            infos.append((name, shape, type_id, offset))
        alignment = metadata.get("general.alignment", 32)
        if not isinstance(alignment, int) or not 1 <= alignment <= 2**16:
            self.fail(f"general.alignment {alignment!r} is not a small positive integer")
        data_start = -(-self.read_bytes // alignment) * alignment
        return GgufHeader(self.path, self.size, metadata, {
            name: self.tensor(name, shape, type_id, data_start + offset) for name, shape, type_id, offset in infos})

    def tensor(self, name: str, shape: tuple[int, ...], type_id: int, offset: int) -> TensorInfo:
        try:
            qtype = GGMLQuantizationType(type_id)
        except ValueError:
            self.fail(f"tensor {name!r} has the unknown type id {type_id}")
        block, block_bytes = GGML_QUANT_SIZES[qtype]
        if any(d <= 0 for d in shape) or shape[0] % block:
            self.fail(f"tensor {name!r} has the shape {list(shape)}, not whole {qtype.name} blocks of {block}")
        nbytes = int(np.prod(shape, dtype=object)) // block * block_bytes
        if offset + nbytes > self.size:
            self.fail(f"truncated: tensor {name!r} needs bytes {offset:,}..{offset + nbytes:,} and the file has "
                      f"{self.size:,}")
        return TensorInfo(name, shape, qtype, offset, nbytes)
