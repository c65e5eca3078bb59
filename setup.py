"""Builds loantwin._loantwin with the project's CMake for `pip install .` (see pyproject.toml)."""

import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = os.environ.get("LOANTWIN_CMAKE_BUILD_DIR")
        if build:
            build = os.path.abspath(build)
        else:
            build = os.path.abspath(os.path.join(self.build_temp, "cmake"))
            subprocess.check_call([
                "cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                f"-DPython_EXECUTABLE={sys.executable}", "-DLOANTWIN_BUILD_TESTS=OFF",
                "-DLOANTWIN_BUILD_BENCH=OFF"])
        jobs = str(os.cpu_count() or 1)
        subprocess.check_call(["cmake", "--build", build, "--target", "_loantwin", "-j", jobs])
        built = glob.glob(os.path.join(build, "python", "loantwin", "_loantwin*.so"))
        if not built:
            raise RuntimeError(f"no _loantwin*.so under {build}/python/loantwin")
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(built[0], dest)


setup(ext_modules=[Extension("loantwin._loantwin", sources=[])], cmdclass={"build_ext": CMakeBuild})
