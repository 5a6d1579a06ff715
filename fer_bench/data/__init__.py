"""Dataset families.  Every module of this package is imported here, so each
``@DATASETS.register`` in it takes effect (one module per dataset family)."""
import importlib
import pkgutil

from fer_bench.data.base import CANONICAL_CLASSES, CANONICAL_CLASSES_8, DatasetInfo, FERDataModule
from fer_bench.registry import DATASETS

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["CANONICAL_CLASSES", "CANONICAL_CLASSES_8", "DatasetInfo", "FERDataModule", "DATASETS"]
