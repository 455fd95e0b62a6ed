"""``zslbench`` whose precision rule answers as on a GPU with native bf16, while training on the CPU.

A run started this way records ``bf16`` (and the GPU's reason) as its precision, as a run started on
such a GPU would; ``tests/test_gpu_paths.py`` then resumes it on the plain CPU.

    python tests/bf16_gpu_child.py run --preset tiny
"""

from __future__ import annotations

import sys

from zslbench.engine import device


def as_on_a_bf16_gpu(where, amp: str) -> device.PrecisionChoice:
    if amp == "auto":
        return device.PrecisionChoice("bf16", "train.amp=auto on a GPU with native bf16")
    return original(where, amp)


if __name__ == "__main__":
    original = device.choose_precision
    device.choose_precision = as_on_a_bf16_gpu
    from zslbench.cli import main

    main(sys.argv[1:])
