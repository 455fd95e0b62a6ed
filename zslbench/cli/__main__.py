"""``python -m zslbench.cli``."""

from zslbench.cli import main

main()
