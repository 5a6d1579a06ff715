"""An example fer_bench plugin: the method ``mini_vgg`` (:mod:`.mini_vgg`) and its metafile.

Importing the package registers the method (``--import examples/plugin/fer_bench_example``);
installed, its entry point imports :mod:`fer_bench_example.mini_vgg` itself."""
from fer_bench_example import mini_vgg  # noqa: F401  (registers mini_vgg)
