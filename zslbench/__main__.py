"""``python -m zslbench`` (used by ``torchrun -m zslbench run …``)."""

from zslbench.cli import main

main()
