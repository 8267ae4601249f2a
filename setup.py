from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

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
    # properties/ lives at the top of the repository (RecBole's layout) and is installed inside
    # the package, so `pip install .` carries it along.
    package_dir={"recbole_instructrec.properties": "properties"},
    package_data={
        "recbole_instructrec.properties": ["*.yaml"],
        "recbole_instructrec.prompts": ["*.yaml"],
    },
    install_requires=[
        # 1.2.1 is the release whose internals plugin.py shims and hooks into.
        "recbole==1.2.1",
        # No upper bound would let pip pick a CUDA build: torch 2.13.0 is the CPU wheel on disk;
        # >=2.6 is the torch.load behaviour plugin.py adapts to.
        "torch>=2.6",
        # 5.x: the cache API (DynamicCache(ddp_cache_data=...), .layers) the scorer uses.
        "transformers>=5.0,<6",
        "peft>=0.17",
        "safetensors>=0.4",
        "pandas",
        "numpy",
        "pyyaml",
        "tqdm",
        # Reads the GGUF file of the embedded model.
        "gguf",
    ],
    extras_require={
        "dev": ["pytest", "black", "ruff", "matplotlib"],
        "bench": ["matplotlib"],
    },
    entry_points={
        "console_scripts": [
            "run_recbole=recbole_instructrec.quick_start.cli:run_recbole_main",
            "instructrec=recbole_instructrec.quick_start.cli:instructrec_main",
        ]
    },
)
