"""Kernels: pure array functions, one module per concept and backend.

``within_cpp``, ``within_numba`` and ``within_cuda`` implement the same three functions
(``oneway``, ``twoway_pass1``, ``twoway_pass2``) with identical signatures; ``reference``
holds plain NumPy oracles used by the tests. Downstream libraries may call these directly:
the signatures are part of the public, stable API.
"""

__all__: list[str] = []
