"""What every benchmark prints with its numbers: the machine, and the spread of repeated runs.

Imported by the scripts in this folder (``python benchmarks/<script>.py`` puts the folder on
``sys.path``).
"""

from __future__ import annotations

import os
import platform
import statistics


def machine() -> str:
    """The processor, cores, torch's version and threads, bfloat16 support and the load."""
    import torch

    from landmarklib.hardware import native_bfloat16

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{torch.backends.cpu.get_cpu_capability()}, native bfloat16 "
            f"{'yes' if native_bfloat16('cpu') else 'no'}; torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads; load average {load}")


def spread(values: list[float]) -> str:
    """``mean ± standard deviation (min-max, n runs)`` of fractions, as percentages."""
    values = [100 * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.1f}% (1 run)"
    return (f"{statistics.mean(values):.1f}% ± {statistics.stdev(values):.1f} "
            f"({min(values):.1f}-{max(values):.1f}, {len(values)} runs)")
