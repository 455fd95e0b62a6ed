"""The baselines, one package each (``vit``, ``transzero``, ``apn``; BASELINES.md).

Importing this package imports every subpackage found in it, and each registers its catalogue entry
on import, so adding a baseline is adding a folder: nothing else lists the baselines.
"""

import importlib
import pkgutil

for _package in pkgutil.iter_modules(__path__):
    if _package.ispkg:
        importlib.import_module(f"{__name__}.{_package.name}")
