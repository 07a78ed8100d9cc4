from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="supcon_tf",
    version="0.1.0",
    description="Supervised Contrastive Learning (Khosla et al., NeurIPS 2020) for Keras 3 / TensorFlow",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["supcon_tf", "supcon_tf.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.17",
        "keras>=3.0",
        "numpy",
        "absl-py",
        "scikit-learn",
        "matplotlib",
        # TensorFlow >= 2.20 no longer depends on it; Keras needs it for TensorBoard logs.
        "tensorboard",
    ],
    extras_require={
        # Streaming TFDS datasets by name (--dataset=tfds:imagenet2012).
        "tfds": ["tensorflow-datasets"],
        "faiss": ["faiss-cpu"],  # The optional FAISS backend of retrieval.nearest_neighbors.
        # The default tests cover the TFDS input path too: CI installs it with the tests.
        "test": [
            "tensorflow-datasets",
            "pytest>=7",
            "pytest-xdist",
            "ruff",
            "nbclient",
            "nbformat",
            "ipykernel",
        ],
    },
    entry_points={
        "console_scripts": [
            "supcon-train=supcon_tf.cli.train:run",
            "supcon-eval=supcon_tf.cli.evaluate:run",
            "supcon-augment-preview=supcon_tf.cli.augment_preview:run",
            "supcon-prepare=supcon_tf.cli.prepare:run",
            "supcon-export=supcon_tf.cli.export:run",
            "supcon-embed=supcon_tf.cli.embed:run",
            "supcon-compare=supcon_tf.cli.compare:run",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
