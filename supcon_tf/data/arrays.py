"""Datasets as NumPy splits, and `tf.data` input pipelines.

`load_dataset` returns train / validation / test splits with images as float32 in
`[0, 1]` (NHWC) and integer labels. The validation split is carved from the training
data (stratified, seeded) for model selection; the test split is kept for the final
numbers only.

Sources: `"digits"` (scikit-learn's bundled 8x8 digits: offline), `"cifar10"`,
`"cifar100"`, `"mnist"`, `"fashion_mnist"` (the Keras dataset loaders, which download
on a connected machine), a path to an `.npz` file with `x_train, y_train, x_test,
y_test`, or a path to a folder with `train/<class>/` and `test/<class>/` image folders.

`supcon_tf.data.class_split` divides a dataset's classes for the class-disjoint
protocol of metric learning.

Example:

>>> splits = load_dataset("digits", validation_fraction=0.1, seed=0)
>>> splits.x_train.shape[1:], splits.num_classes
((8, 8, 1), 10)
>>> batches = make_dataset(splits.x_train, splits.y_train, batch_size=32)
>>> images, labels = next(iter(batches))
>>> tuple(images.shape), labels.dtype.name
((32, 8, 8, 1), 'int32')
"""

import dataclasses
import difflib
from pathlib import Path

import numpy as np
import tensorflow as tf

from supcon_tf.data import tfrecords
from supcon_tf.errors import DataError, UsageError

# How a run divides its classes: all classes in every split, or the class-disjoint protocol.
KERAS_DATASETS = ("cifar10", "cifar100", "mnist", "fashion_mnist")
DATASETS = ("digits", *KERAS_DATASETS)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
TFDS_PREFIX = "tfds:"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

# scikit-learn's digits ship without a test split: a fixed, seed-independent 20 %.
_DIGITS_TEST_FRACTION = 0.2
_DIGITS_TEST_SEED = 0


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A dataset path (or `data_dir`) that does not exist: a `DataError` and a `FileNotFoundError`."""


@dataclasses.dataclass(frozen=True)
class DatasetSplits:
    """Train / validation / test splits: float32 images in `[0, 1]` NHWC, int32 labels.

    Attributes:
        x_train, y_train: training images `[N, H, W, C]` and labels `[N]`.
        x_val, y_val: validation split (empty when `validation_fraction=0`).
        x_test, y_test: test split, for final numbers only.
        class_names: one name per class index.
        name: the dataset's name or path.

    Example:

    >>> splits = load_dataset("digits")
    >>> splits.num_classes, splits.input_shape, splits.x_train.dtype
    (10, (8, 8, 1), dtype('float32'))
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    name: str

    @property
    def num_classes(self):
        """Number of classes."""
        return len(self.class_names)

    @property
    def input_shape(self):
        """`(height, width, channels)` of one image."""
        return tuple(self.x_train.shape[1:])


def _as_images(images, source):
    """Returns images as float32 NHWC in `[0, 1]`; integers are divided by 255."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DataError(
            f"Images from {source} must have shape [N, H, W] or [N, H, W, C], "
            f"got shape {images.shape}."
        )
    if np.issubdtype(images.dtype, np.integer):
        if images.size and (images.min() < 0 or images.max() > 255):
            raise DataError(
                f"Integer images from {source} must be in [0, 255], got values in "
                f"[{images.min()}, {images.max()}]."
            )
        return images.astype(np.float32) / 255.0
    if not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"Images from {source} must be numbers, got dtype {images.dtype}.")
    images = images.astype(np.float32)
    if images.size and (
        not np.all(np.isfinite(images)) or images.min() < 0.0 or images.max() > 1.0
    ):
        raise DataError(
            f"Floating-point images from {source} must be finite and in [0, 1]; got values "
            f"in [{np.nanmin(images)}, {np.nanmax(images)}]. Divide by 255 first."
        )
    return images


def _as_labels(labels, num_images, source):
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != num_images:
        raise DataError(
            f"Labels from {source} must have shape [{num_images}] (one per image), "
            f"got shape {labels.shape}."
        )
    if (
        labels.size
        and not np.issubdtype(labels.dtype, np.integer)
        and not np.all(np.equal(np.mod(labels, 1), 0))
    ):
        raise DataError(f"Labels from {source} must be integers, got dtype {labels.dtype}.")
    if labels.size and labels.min() < 0:
        raise DataError(f"Labels from {source} must be non-negative, got {labels.min()}.")
    return labels.astype(np.int32)


def _load_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    labels = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        labels,
        test_size=_DIGITS_TEST_FRACTION,
        random_state=_DIGITS_TEST_SEED,
        stratify=labels,
    )
    return x_train, y_train, x_test, y_test, tuple(str(name) for name in digits.target_names)


def _load_keras_dataset(name):
    import keras

    loader = getattr(keras.datasets, name)
    if name == "cifar100":
        (x_train, y_train), (x_test, y_test) = loader.load_data(label_mode="fine")
    else:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    num_classes = int(max(np.max(y_train), np.max(y_test))) + 1
    return x_train, y_train, x_test, y_test, tuple(str(index) for index in range(num_classes))


def _cache_npz(path, arrays):
    """Saves downloaded arrays as `<data_dir>/<name>.npz`, read offline next time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial.npz")
    np.savez(temporary, **dict(zip(NPZ_KEYS, arrays[:4], strict=True)))
    temporary.replace(path)


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            found = sorted(archive.files)
            arrays = {key: archive[key] for key in NPZ_KEYS if key in archive.files}
    except Exception as error:  # zipfile.BadZipFile, OSError, EOFError, object arrays, ...
        raise DataError(f"Cannot read the .npz dataset {path}: {error}") from error
    missing = [key for key in NPZ_KEYS if key not in arrays]
    if missing:
        raise DataError(
            f"{path} is missing arrays {missing}; an .npz dataset needs {list(NPZ_KEYS)} "
            f"(found {found})."
        )
    x_train, y_train, x_test, y_test = (arrays[key] for key in NPZ_KEYS)
    num_classes = int(max(np.max(y_train, initial=0), np.max(y_test, initial=0))) + 1
    return x_train, y_train, x_test, y_test, tuple(str(index) for index in range(num_classes))


def _list_images(split_dir, class_names):
    paths, labels = [], []
    for label, class_name in enumerate(class_names):
        class_dir = split_dir / class_name
        if not class_dir.is_dir():
            continue
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
                paths.append(str(path))
                labels.append(label)
    return paths, np.asarray(labels, dtype=np.int32)


def _decode(path):
    image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
    return tf.image.convert_image_dtype(image, tf.float32)


def _find_bad_image(paths):
    """Decodes images one by one and returns `(path, reason)` of the first failure."""
    reference_shape = None
    for path in paths:
        try:
            shape = tuple(_decode(path).shape)
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
            return path, f"it is not a readable image ({error.message.splitlines()[0]})"
        if reference_shape is None:
            reference_shape = shape
        elif shape != reference_shape:
            return path, (
                f"its shape {shape} differs from the first image's {reference_shape}; images "
                "of several sizes are streamed as square crops: set --image_size"
            )
    return None, None


def _read_images(paths, split_dir):
    if not paths:
        raise DataError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found under {split_dir}.")
    dataset = tf.data.Dataset.from_tensor_slices(paths).map(
        _decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    try:
        images = [image.numpy() for image in dataset.batch(1024)]
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        bad_path, reason = _find_bad_image(paths)
        if bad_path is None:
            raise DataError(f"Cannot read the images under {split_dir}: {error.message}") from error
        raise DataError(f"Cannot read image {bad_path}: {reason}.") from error
    return np.concatenate(images, axis=0)


def _load_image_folder(root):
    train_dir, test_dir = root / "train", root / "test"
    for split_dir in (train_dir, test_dir):
        if not split_dir.is_dir():
            raise DatasetNotFoundError(
                f"Image-folder dataset {root} has no {split_dir.name}/ folder; expected "
                f"{root}/train/<class>/*.jpg and {root}/test/<class>/*.jpg."
            )
    class_names = tuple(sorted(path.name for path in train_dir.iterdir() if path.is_dir()))
    if not class_names:
        raise DataError(f"{train_dir} has no class sub-folders.")
    unknown = sorted(
        path.name for path in test_dir.iterdir() if path.is_dir() and path.name not in class_names
    )
    if unknown:
        raise DataError(
            f"{test_dir} has classes {unknown} that {train_dir} lacks; both splits need the "
            f"same class folders {list(class_names)}."
        )
    train_paths, y_train = _list_images(train_dir, class_names)
    test_paths, y_test = _list_images(test_dir, class_names)
    x_train = _read_images(train_paths, train_dir)
    x_test = _read_images(test_paths, test_dir)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"Train images {x_train.shape[1:]} and test images {x_test.shape[1:]} under "
            f"{root} must have the same shape."
        )
    return x_train, y_train, x_test, y_test, class_names


def _split_validation(images, labels, validation_fraction, seed):
    if validation_fraction == 0:
        return images, labels, images[:0], labels[:0]
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    num_validation = int(round(validation_fraction * len(labels)))
    if num_validation < 1 or num_validation >= len(labels):
        raise DataError(
            f"`validation_fraction`={validation_fraction} of {len(labels)} training images "
            f"leaves {num_validation} for validation; need at least one in each split: "
            "change --validation_fraction (0 for none) or add images."
        )
    if stratify is not None and num_validation < len(np.unique(labels)):
        stratify = None
    x_train, x_val, y_train, y_val = train_test_split(
        images, labels, test_size=num_validation, random_state=seed, stratify=stratify
    )
    return x_train, y_train, x_val, y_val


def _exists(path):
    return tf.io.gfile.exists(str(path))


def _is_dir(path):
    return tf.io.gfile.isdir(str(path))


def _join(folder, name):
    return f"{str(folder).rstrip('/')}/{name}"


def _class_folders_with_images(path, looked_at=20):
    """The subfolders of `path` that hold image files (the first `looked_at` entries of
    each are checked): a flat `<class>/` layout without `train/` and `test/`."""
    classes = []
    for entry in sorted(tf.io.gfile.listdir(str(path))):
        folder = _join(path, entry.rstrip("/"))
        if not _is_dir(folder):
            continue
        names = tf.io.gfile.listdir(folder)[:looked_at]
        if any(name.lower().endswith(IMAGE_EXTENSIONS) for name in names):
            classes.append(entry.rstrip("/"))
    return classes


def resolve_dataset(name_or_path, data_dir=None):
    """`(kind, location)` of a dataset, without reading it: where a run's data comes from.

    `kind` is `"named"` (a dataset of `DATASETS`, loaded by name), `"npz"`, `"folder"`
    (an image folder, `train/<class>/` and `test/<class>/`), `"tfrecord"` (a folder of
    `train-*` shards) or `"tfds"` (`"tfds:<name>"`). A named dataset with a local copy
    in `data_dir` (`<data_dir>/<name>.npz` or `<data_dir>/<name>/train/`) resolves to
    that copy; a relative path missing here is looked up in `data_dir`.

    Raises:
        DatasetNotFoundError: `data_dir` or the dataset's path does not exist.
        UsageError: a name that is neither a known dataset nor a path (the message
            lists the choices).
        DataError: a path that is neither an `.npz` file nor a dataset folder.

    Example:

    >>> resolve_dataset("digits")
    ('named', 'digits')
    >>> resolve_dataset("cifar-10")
    Traceback (most recent call last):
    ...
    supcon_tf.errors.UsageError: Unknown dataset 'cifar-10' (did you mean 'cifar10'?); \
use one of digits, cifar10, cifar100, mnist, fashion_mnist, a path to an .npz file or an \
image folder (train/<class>/, test/<class>/), a folder of TFRecord shards or tfds:<name>.
    """
    name = str(name_or_path)
    if data_dir is not None and not _is_dir(data_dir):
        raise DatasetNotFoundError(
            f"--data_dir {data_dir} does not exist; fix the path, create the folder (to "
            "cache downloaded datasets there) or drop --data_dir."
        )
    if name.startswith(TFDS_PREFIX):
        return "tfds", name
    if name in DATASETS:
        if data_dir is not None:
            copy = _join(data_dir, f"{name}.npz")
            if _exists(copy) and not _is_dir(copy):
                return "npz", copy
            if _is_dir(_join(_join(data_dir, name), "train")):
                return "folder", _join(data_dir, name)
        return "named", name
    path = name
    relative = not Path(name).is_absolute() and "://" not in name
    if data_dir is not None and relative and not _exists(path):
        path = _join(data_dir, name)
    if not _exists(path):
        if any(character in name for character in "/\\.") or data_dir is not None:
            where = " (also looked up in --data_dir)" if data_dir is not None and relative else ""
            kind = "file" if name.endswith(".npz") else "path"
            raise DatasetNotFoundError(
                f"Dataset {kind} {path} does not exist{where}; check --dataset."
            )
        guesses = difflib.get_close_matches(name, DATASETS, n=1)
        guess = f" (did you mean {guesses[0]!r}?)" if guesses else ""
        raise UsageError(
            f"Unknown dataset {name!r}{guess}; use one of {', '.join(DATASETS)}, a path to "
            "an .npz file or an image folder (train/<class>/, test/<class>/), a folder of "
            "TFRecord shards or tfds:<name>."
        )
    if _is_dir(path):
        if tfrecords.is_shard_folder(path):
            return "tfrecord", path
        if _is_dir(_join(path, "train")):
            return "folder", path
        classes = _class_folders_with_images(path)
        if classes:
            shown = ", ".join(f"{name}/" for name in classes[:3]) + (
                ", ..." if len(classes) > 3 else ""
            )
            raise DataError(
                f"Dataset folder {path} holds class folders ({shown}) but no train/ and test/ "
                f"split; move them under {_join(path, 'train')}/ and put held-out images of "
                f"each class under {_join(path, 'test')}/<class>/ (the validation split is "
                "carved from train/ by --validation_fraction)"
            )
        raise DataError(
            f"Dataset folder {path} holds neither train/<class>/ image folders nor train-* "
            "TFRecord shards; point --dataset at an image folder (train/<class>/, "
            "test/<class>/) or a supcon-prepare output."
        )
    if path.endswith(".npz"):
        return "npz", path
    raise DataError(
        f"Dataset {path} is neither an .npz file nor a folder with train/ and test/; point "
        "--dataset at one of them."
    )


def load_dataset(name_or_path="digits", data_dir=None, validation_fraction=0.1, seed=0):
    """Loads a dataset as train / validation / test NumPy splits.

    Args:
        name_or_path: `"digits"`, `"cifar10"`, `"cifar100"`, `"mnist"`,
            `"fashion_mnist"`, a path to an `.npz` file (arrays `x_train, y_train,
            x_test, y_test`; images `[N, H, W]` or `[N, H, W, C]`, integers in
            `[0, 255]` or floats in `[0, 1]`), or a path to a folder holding
            `train/<class>/` and `test/<class>/` images (JPEG, PNG, BMP, GIF; the class
            order is the sorted folder names; all images of one size).
        data_dir: optional folder with local copies: `<data_dir>/<name>.npz` or
            `<data_dir>/<name>/{train,test}/` are used instead of downloading a named
            dataset, and a downloaded dataset is cached there as `<name>.npz`; a
            relative path is looked up there too.
        validation_fraction: fraction of the training data held out (stratified) for
            validation, in `[0, 1)`.
        seed: seed of the validation split.

    Returns:
        A `DatasetSplits`.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: an unknown name, a corrupt file, or malformed arrays.

    Example:

    >>> splits = load_dataset("digits")
    >>> len(splits.x_train), len(splits.x_val), len(splits.x_test)
    (1293, 144, 360)
    """
    if isinstance(validation_fraction, bool) or not (
        isinstance(validation_fraction, (int, float)) and 0 <= validation_fraction < 1
    ):
        raise UsageError(f"`validation_fraction` must be in [0, 1), got {validation_fraction!r}.")
    kind, source = resolve_dataset(name_or_path, data_dir)
    if kind in ("tfrecord", "tfds"):
        raise UsageError(
            f"Dataset {source} is streamed (TFRecord shards or TFDS), not loaded into RAM; "
            "open it with supcon_tf.data.open_streaming_dataset (--image_size in supcon-train)."
        )
    if kind == "named" and source == "digits":
        arrays = _load_digits()
    elif kind == "named":
        arrays = _load_keras_dataset(source)
        if data_dir is not None:
            _cache_npz(Path(data_dir) / f"{source}.npz", arrays)
    elif kind == "npz":
        arrays = _load_npz(source)
    else:
        arrays = _load_image_folder(Path(source))
    x_train, y_train, x_test, y_test, class_names = arrays
    x_train = _as_images(x_train, f"{source} (x_train)")
    x_test = _as_images(x_test, f"{source} (x_test)")
    y_train = _as_labels(y_train, len(x_train), f"{source} (y_train)")
    y_test = _as_labels(y_test, len(x_test), f"{source} (y_test)")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"Train images {x_train.shape[1:]} and test images {x_test.shape[1:]} from "
            f"{source} must have the same shape."
        )
    if len(x_train) == 0 or len(x_test) == 0:
        raise DataError(f"Dataset {source} needs training and test images, got an empty split.")
    x_train, y_train, x_val, y_val = _split_validation(x_train, y_train, validation_fraction, seed)
    return DatasetSplits(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        class_names=tuple(class_names),
        name=str(name_or_path),
    )


def _epochs_of_batches(x, y, batch_size, shuffle, seed, drop_remainder, first_epoch, end_epoch):
    """Batches of epochs `first_epoch .. end_epoch - 1`, each permuted from `(seed, epoch)`.

    Only the sample indices are permuted and batched; each batch then gathers its
    images, so memory holds the arrays once whatever the number of epochs (a chain
    of per-epoch shuffle buffers of the images grew with the epochs).
    """
    images = tf.convert_to_tensor(x)
    labels = None if y is None else tf.convert_to_tensor(y)
    num_samples = len(x)

    def epoch_batches(epoch):
        order = tf.range(num_samples, dtype=tf.int64)
        if shuffle:
            epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
            order = tf.random.experimental.stateless_shuffle(order, seed=epoch_seed)
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder)

    def gather(indices):
        batch = tf.gather(images, indices)
        return batch if labels is None else (batch, tf.gather(labels, indices))

    indices = tf.data.Dataset.range(first_epoch, end_epoch).flat_map(epoch_batches)
    return indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def make_dataset(
    x,
    y=None,
    batch_size=256,
    shuffle=False,
    seed=0,
    augment=None,
    drop_remainder=False,
    epochs=None,
    initial_epoch=0,
):
    """Builds a `tf.data` pipeline: shuffle, batch, augment in parallel, prefetch.

    Args:
        x: images `[N, H, W, C]`.
        y: optional labels `[N]`; the pipeline yields `(images, labels)` when given.
        batch_size: samples per batch.
        shuffle: shuffle the samples (each epoch a full permutation).
        seed: shuffling seed.
        augment: optional Keras layer (or callable) applied to each batch with
            `training=True`, in parallel.
        drop_remainder: drop the last, smaller batch.
        epochs: `None` gives one pass (reshuffled on each iteration). An integer gives
            the batches of epochs `initial_epoch .. epochs - 1` in one stream, each
            epoch shuffled by a seed derived from `(seed, epoch)`: a run resumed at
            epoch k sees exactly the batches of an uninterrupted run (use with
            `fit(..., steps_per_epoch=...)`).
        initial_epoch: the first epoch of the stream (with `epochs`).

    Returns:
        A `tf.data.Dataset`.

    Example:

    >>> import numpy as np
    >>> images = np.zeros((10, 4, 4, 1), dtype="float32")
    >>> [int(batch.shape[0]) for batch in make_dataset(images, batch_size=4)]
    [4, 4, 2]
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    num_samples = len(x)
    if y is not None and len(y) != num_samples:
        raise ValueError(f"`x` has {num_samples} samples but `y` has {len(y)}; they must match.")
    if drop_remainder and num_samples < batch_size:
        raise ValueError(
            f"`drop_remainder=True` with {num_samples} samples and batch size {batch_size} "
            "leaves no batch; lower the batch size."
        )
    if epochs is None:
        dataset = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
        if shuffle:
            dataset = dataset.shuffle(num_samples, seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    else:
        if initial_epoch >= epochs:
            raise ValueError(
                f"`initial_epoch`={initial_epoch} must be smaller than `epochs`={epochs}."
            )
        dataset = _epochs_of_batches(
            x, y, batch_size, shuffle, seed, drop_remainder, initial_epoch, epochs
        )
    if augment is not None:

        def augment_batch(*batch):
            images = augment(batch[0], training=True)
            return images if y is None else (images, batch[1])

        dataset = dataset.map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
