"""Only for the .pth file that lets `lm_eval --model eebench` work (see eebench_lm_eval_hook.py):
pyproject metadata cannot place a file at the root of site-packages, a build_py step can."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_FILE = "eebench_lm_eval.pth"


class BuildPyWithPth(build_py):
    def run(self):
        super().run()
        self.copy_file(str(Path(__file__).with_name(PTH_FILE)), str(Path(self.build_lib) / PTH_FILE))

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH_FILE)]


setup(cmdclass={"build_py": BuildPyWithPth})
