"""Compiles the C kernels into the package when it is built (a wheel, or a regular install).

Everything else about the package is in pyproject.toml. The build step loads
``recoworld/kernels/compiler.py`` by its path (it needs only the standard library, so the
kernels compile before torch is installed) and compiles each kernel into
``recoworld/kernels/prebuilt/`` of the build. Without a C compiler the package is built
without them and compiles them at run time, where a compiler exists, or runs torch
(``kernel="auto"``). An editable install compiles them at run time too.
"""

import importlib.util
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


def _compiler_module():
    spec = importlib.util.spec_from_file_location("recoworld_kernel_compiler", HERE / "recoworld/kernels/compiler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithKernels(build_py):
    """build_py, then the C kernels compiled into the built package."""

    def run(self):
        super().run()
        if self.editable_mode:
            return  # the sources stay in place: the kernels compile at run time
        compiler = _compiler_module()
        try:
            built = compiler.prebuild(Path(self.build_lib) / "recoworld" / "kernels")
        except compiler.CompilerNotFoundError as error:
            self.warn(f"the C kernels were not compiled ({error}); they compile at run time where a C "
                      "compiler exists, and kernel='auto' runs torch where none does")
        else:
            self.announce(f"compiled the C kernels: {', '.join(path.name for path in built)}", level=2)


class KernelDistribution(Distribution):
    """A distribution whose wheel is tagged for the platform its kernels were compiled on."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithKernels}, distclass=KernelDistribution)
