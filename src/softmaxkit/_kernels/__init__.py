"""Private numba kernels.  Nothing here is public API; see ``softmaxkit`` for semantics.

Modules are imported lazily by the dispatch layer so that ``import softmaxkit`` never
imports numba or compiles anything.
"""
