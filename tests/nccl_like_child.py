"""A ``zslbench`` process under ``torchrun`` whose process group is bound the way nccl binds.

nccl serves CUDA tensors only. ``ZSLBENCH_TEST_BACKEND=cuda:gloo`` creates the default group with a
backend that maps only the CUDA device type, so on a CPU-only machine any host (CPU) tensor handed
to a collective of that group fails exactly as it would under nccl: ``No backend type associated
with device type cpu``. The rest of the command line is ``zslbench``'s.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/nccl_like_child.py run --preset tiny
"""

from __future__ import annotations

import os
import sys

import torch.distributed as dist

from zslbench.cli import main

if __name__ == "__main__":
    dist.init_process_group(backend=os.environ.get("ZSLBENCH_TEST_BACKEND", "cuda:gloo"))
    main(sys.argv[1:])
