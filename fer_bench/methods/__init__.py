"""Paper methods and baselines.  Every module of this package is imported here, so each
``@METHODS.register`` in it takes effect (one module per method family, as timm does)."""
import importlib
import pkgutil

from fer_bench.methods.base import FERMethod, count_params
from fer_bench.registry import METHODS

for _m in pkgutil.iter_modules(__path__):
    if _m.name not in ("base", "metafile", "margin"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["FERMethod", "count_params", "METHODS"]
