"""The plain-C kernels, their bindings and their build, in one place.

- :mod:`~recoworld.kernels.compiler`: compiles the kernels (at package build time into
  ``prebuilt/``, see ``setup.py``, or at run time into the cache); standard library only.
- :mod:`~recoworld.kernels.build`: loads a kernel (prebuilt, or compiled on first use),
  checks its structs' layout against their ctypes mirrors, runs it over chunks of users on
  threads, and resolves ``kernel="auto"`` (:func:`~recoworld.kernels.build.choose`).
- :mod:`~recoworld.kernels.placement`: the ``device`` setting, checked, and the torch
  threads of an env's own work.
- :mod:`~recoworld.kernels.hashes` (``rng.c``, ``rng.h``): :mod:`recoworld.rng`'s hashes.
- :mod:`~recoworld.kernels.users` (``users_step.c``): the statistical users' state and
  their fused step.
- :mod:`~recoworld.kernels.world` (``world_step.c``): the env's bookkeeping state and its
  fused step.

The torch code of the simulators and envs is the reference; each kernel computes the same
(tests/test_fused_kernel.py). A kernel is chosen once, when a simulator or env is built
(``kernel="auto"``, ``"c"`` or ``"torch"``), through a backend object with the same ``start``/``step`` contract as
the torch one. This package belongs to the shared language: it imports nothing from the
simulators or envs.
"""

from recoworld.kernels.build import CompilerNotFoundError, LayoutMismatchError

__all__ = ["CompilerNotFoundError", "LayoutMismatchError"]
