"""pip's way in (pyproject.toml): builds the extension module `shmarray` with this tree's CMake.

CMake configures the whole project (it needs the same Debian packages as `tools/setup.sh`) but
builds only the target `shmarray_python` (the module and the C++ client it links), for the
interpreter running pip, so a venv's python gets a module for itself. Extra CMake arguments come
from $CMAKE_ARGS (e.g. -DCMAKE_CXX_COMPILER_LAUNCHER=ccache); parallel jobs from
$CMAKE_BUILD_PARALLEL_LEVEL (default: the number of CPUs).
"""
import os
import pathlib
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCE = pathlib.Path(__file__).parent.resolve()


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        build = pathlib.Path(self.build_temp).resolve() / "cmake"
        build.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake", "-S", str(SOURCE), "-B", str(build),
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DSHMARRAY_BUILD_TESTS=OFF",
            "-DSHMARRAY_BUILD_BENCH=OFF",
        ]
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        configure += shlex.split(os.environ.get("CMAKE_ARGS", ""))
        subprocess.run(configure, check=True)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        subprocess.run(["cmake", "--build", str(build), "--target", "shmarray_python",
                        "--parallel", jobs], check=True)
        built = sorted((build / "python").glob("shmarray.*.so"))
        if not built:
            raise RuntimeError(f"CMake built no shmarray.*.so in {build / 'python'}")
        target = pathlib.Path(self.get_ext_fullpath(ext.name)).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], target)
        # The stub beside the module, where type checkers look for it.
        shutil.copyfile(SOURCE / "python" / "shmarray.pyi", target.parent / "shmarray.pyi")


setup(
    ext_modules=[CMakeExtension("shmarray")],
    cmdclass={"build_ext": CMakeBuild},
    # Not ./build: that is where the CMake build of this tree lives (README, tools/setup.sh).
    options={"build": {"build_base": "build-pip"}},
)
