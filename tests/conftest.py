"""Shared test fixtures: quiet TensorFlow logs, the optional real-data archive, `ram://`."""

import os
import tarfile
import uuid
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SUPCON_SHARED_DATA", ROOT.parent / "shared" / "data"))
CIFAR10_ARCHIVE = SHARED_DATA / "cifar10-jpeg.tar.gz"


def extract_cifar10_subset(archive, destination, train_per_class, test_per_class):
    """Extracts the first N images per class of each split into `destination`."""
    limits = {"train": train_per_class, "test": test_per_class}
    counts = defaultdict(int)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3 or parts[-3] not in limits:
                continue
            key = (parts[-3], parts[-2])
            if counts[key] >= limits[parts[-3]]:
                continue
            counts[key] += 1
            target = Path(destination, parts[-3], parts[-2], parts[-1])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
    return Path(destination)


@pytest.fixture(scope="session")
def cifar10_archive():
    """Path of ../shared/data/cifar10-jpeg.tar.gz; skips when the shared folder is absent."""
    if not CIFAR10_ARCHIVE.is_file():
        pytest.skip(
            f"real-data test: {CIFAR10_ARCHIVE} not found (../shared/data sits beside the "
            "repository on the project's machines; a user's clone has none)"
        )
    return CIFAR10_ARCHIVE


@pytest.fixture(scope="session")
def cifar10_subset_dir(tmp_path_factory, cifar10_archive):
    """A small CIFAR-10 image-folder dataset (train/<class>/, test/<class>/) from the archive."""
    destination = tmp_path_factory.mktemp("cifar10_subset")
    return extract_cifar10_subset(
        cifar10_archive, destination, train_per_class=40, test_per_class=10
    )


@pytest.fixture
def ram_dir():
    """A new folder on TensorFlow's in-memory file system (`ram://`), removed afterwards.

    It stands in for a `gs://` bucket: the same `tf.io.gfile` code paths, no network.
    """
    import tensorflow as tf

    folder = f"ram://supcon-test-{uuid.uuid4().hex}"
    yield folder
    if tf.io.gfile.exists(folder):
        tf.io.gfile.rmtree(folder)
