"""What torch gets from this CPU: the intra-op thread count, set for a block and restored
after it, and whether bfloat16 products are native."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads (results of a computation may differ in the
    last bits between thread counts), then restore the count it had."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


NATIVE_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""x86 CPU flags of bfloat16 dot-product instructions (AVX-512 BF16, AMX)."""


@functools.cache
def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bfloat16 natively: one of ``NATIVE_BFLOAT16_FLAGS`` in
    the first ``flags`` line of ``cpuinfo`` and oneDNN's bfloat16 support in this torch.
    False where the file cannot be read (another OS): emulated bfloat16 products are slower
    than float32 ones, so the fast path is taken only where it is known to be fast."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in lines
                  if line.startswith("flags") and ":" in line), [])
    return bool(NATIVE_BFLOAT16_FLAGS.intersection(flags)) and bool(
        torch.ops.mkldnn._is_mkldnn_bf16_supported())
