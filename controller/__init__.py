"""rrmbed's controller package, also the entry of every rrmbed process (``rrmbed ...``,
``python -m controller.cli ...``), so this runs before numpy is imported.

numpy's OpenBLAS picks its matrix kernels by the CPU it recognizes, and two processes on
the same machine can disagree: on an AMD family-26 EPYC the host's detection gave the
Haswell kernels and a container's another, and a BS node's policy then chose powers that
differ in the last bits (measured: ``tests/deploy/test_compose.py``). Every rrmbed process
therefore uses the Haswell (AVX2) kernels wherever the CPU has AVX2 and FMA, so that runs
on any such machine, in or out of containers, compute the same numbers. A value the user
set is kept."""

import os
import platform


def _pin_openblas() -> None:
    if "OPENBLAS_CORETYPE" in os.environ or platform.machine() not in ("x86_64", "AMD64"):
        return
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return
    if "avx2" in flags and "fma" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"


_pin_openblas()
