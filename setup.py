import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

STARTUP_PTH = "recbole_instructrec.pth"


class BuildPyWithStartupHook(build_py):
    """Also writes recbole_instructrec.pth at the top of the wheel, which lands in site-packages.

    Python runs a .pth file's import lines at start-up: this one installs the hook in
    _recbole_instructrec_startup.py, so that `from recbole.quick_start import ...` works on
    numpy 2 even before `import recbole_instructrec` (see that module).
    """

    def run(self):
        super().run()
        path = os.path.join(self.build_lib, STARTUP_PTH)
        with open(path, "w", encoding="utf-8") as f:
            f.write("import _recbole_instructrec_startup\n")

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, STARTUP_PTH)]


setup(
    name="recbole-instructrec",
    version="0.1.0",
    description="InstructRec (recommendation as instruction following) as a RecBole plugin",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["recbole_instructrec", "recbole_instructrec.*"])
    + ["recbole_instructrec.properties"],
    py_modules=["_recbole_instructrec_startup"],
    # properties/ lives at the top of the repository (RecBole's layout) and is installed inside
    # the package, so `pip install .` carries it along.
    package_dir={"recbole_instructrec.properties": "properties"},
    package_data={
        "recbole_instructrec.properties": ["*.yaml"],
        "recbole_instructrec.prompts": ["*.yaml"],
        # the page of `instructrec serve`
        "recbole_instructrec.quick_start": ["static/*"],
    },
    install_requires=[
        # 1.2.1 is the release whose internals plugin.py shims and hooks into.
        "recbole==1.2.1",
        # RecBole 1.2.1 caps ray at 2.6.3, and that ray imports pkg_resources when it loads (as
        # `import recbole.quick_start` does: objective_function, load_data_and_model, RecBole's
        # model tests). setuptools 82.0.0 removed pkg_resources; 81.x still ships it.
        "setuptools<82",
        # No upper bound would let pip pick a CUDA build: torch 2.13.0 is the CPU wheel on disk;
        # >=2.6 is the torch.load behaviour plugin.py adapts to.
        "torch>=2.6",
        # The tested minor series: 5.24 renamed the decoders' past_key_values argument to
        # cache= (the old name warns and goes in 5.40; before 5.24 cache= is silently dropped),
        # and later minors have deprecated more of what we call. Raise the bound after running
        # the tests on the next minor (they turn our deprecated calls into errors).
        "transformers>=5.24,<5.25",
        "peft>=0.17",
        "safetensors>=0.4",
        "pandas",
        "numpy",
        "pyyaml",
        # Paired bootstrap intervals, McNemar and Wilcoxon tests of the benchmark tables.
        "scipy>=1.15",
        "tqdm",
        # Reads the GGUF file of the embedded model.
        "gguf",
        # One process de-quantizes the GGUF into the cache while the others wait (--nproc).
        "filelock>=3.12",
    ],
    extras_require={
        # fastapi, uvicorn and httpx: the server tests (tests/test_serve.py); selenium drives
        # the system's Chromium in the page test (skipped where no chromium is installed).
        "dev": [
            "pytest",
            "black",
            "ruff",
            "matplotlib",
            "fastapi>=0.110",
            "uvicorn>=0.29",
            "httpx>=0.27",
            "selenium>=4.10",
        ],
        "bench": ["matplotlib", "httpx>=0.27"],
        # `instructrec serve`
        "serve": ["fastapi>=0.110", "uvicorn>=0.29"],
    },
    entry_points={
        "console_scripts": [
            "run_recbole=recbole_instructrec.quick_start.cli:run_recbole_main",
            "instructrec=recbole_instructrec.quick_start.cli:instructrec_main",
        ]
    },
    cmdclass={"build_py": BuildPyWithStartupHook},
)
