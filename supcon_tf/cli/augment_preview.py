"""`supcon-augment-preview`: writes a PNG grid of images and their augmented views.

Each row shows one image, then `--num_views` views drawn by the `--augment` policy,
so a user sees what the encoder sees during contrastive pretraining.

Example:

    supcon-augment-preview --augment=simaugment --strength=0.5 --num_views=4 \
        --dataset=digits --output=preview.png
"""

from pathlib import Path

import numpy as np
from absl import app, flags, logging

from supcon_tf import augment

FLAGS = flags.FLAGS

flags.DEFINE_enum("augment", "simaugment", augment.AUGMENTATIONS, "Augmentation policy.")
flags.DEFINE_string(
    "dataset",
    "digits",
    "'digits' (scikit-learn, no download), a .npz file (array x_train, images or x) or "
    "a folder of images (PNG/JPEG, searched recursively).",
)
flags.DEFINE_string("output", "augment_preview.png", "Path of the PNG grid to write.")
flags.DEFINE_integer("num_images", 8, "Images (rows) to show.", lower_bound=1)
flags.DEFINE_integer("num_views", 4, "Augmented views (columns) per image.", lower_bound=1)
flags.DEFINE_integer("image_size", 0, "Output side of the crops; 0 keeps the input size.")
flags.DEFINE_float("magnitude", 9.0, "RandAugment magnitude in [0, 10].")
flags.DEFINE_float("strength", 1.0, "Colour-jitter strength s of SimAugment.")
flags.DEFINE_integer("num_layers", 2, "RandAugment operations per image.", lower_bound=1)
flags.DEFINE_float("min_crop_area", 0.08, "Smallest crop area fraction.")
flags.DEFINE_bool("blur", False, "Add SimCLR's Gaussian blur to SimAugment.")
flags.DEFINE_enum(
    "autoaugment_policy", "imagenet", tuple(augment.AUTOAUGMENT_POLICIES), "AutoAugment policy."
)
flags.DEFINE_integer("seed", 0, "Seed of the image choice and of the augmentations.")
flags.DEFINE_integer("min_side", 64, "Cells are enlarged to at least this many pixels.")


def _as_float_images(images):
    """`[N, H, W]` or `[N, H, W, C]` integers in [0, 255] or floats -> float32 NHWC in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"Expected images [N, H, W] or [N, H, W, C], got shape {images.shape}.")
    if images.dtype.kind in "ui" or images.max() > 1.0:
        images = images / 255.0
    return images.astype(np.float32)


def load_preview_images(dataset, num_images, seed=0):
    """Returns `num_images` float images in [0, 1] from `dataset` (see the --dataset flag)."""
    rng = np.random.default_rng(seed)
    path = Path(dataset)
    if dataset == "digits":
        from sklearn.datasets import load_digits

        images = load_digits().images / 16.0
    elif path.suffix == ".npz":
        if not path.is_file():
            raise FileNotFoundError(f"--dataset file {dataset} does not exist.")
        with np.load(path) as arrays:
            key = next((k for k in ("x_train", "images", "x") if k in arrays), None)
            if key is None:
                raise ValueError(
                    f"{dataset} holds arrays {sorted(arrays)}; expected x_train, images or x."
                )
            images = arrays[key]
    elif path.is_dir():
        import tensorflow as tf

        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise ValueError(f"No PNG or JPEG images found under {dataset}.")
        files = [files[i] for i in rng.choice(len(files), min(num_images, len(files)), False)]
        images = np.stack([tf.io.decode_image(p.read_bytes(), channels=3).numpy() for p in files])
    else:
        raise FileNotFoundError(
            f"--dataset={dataset!r} is neither 'digits', an existing .npz file nor a folder."
        )
    images = _as_float_images(images)
    chosen = rng.choice(len(images), min(num_images, len(images)), replace=False)
    return images[np.sort(chosen)]


def main(argv):
    del argv
    images = load_preview_images(FLAGS.dataset, FLAGS.num_images, FLAGS.seed)
    augmenter = augment.build_augmenter(
        FLAGS.augment,
        seed=FLAGS.seed,
        image_size=FLAGS.image_size or None,
        magnitude=FLAGS.magnitude,
        strength=FLAGS.strength,
        num_layers=FLAGS.num_layers,
        min_crop_area=FLAGS.min_crop_area,
        blur=FLAGS.blur,
        autoaugment_policy=FLAGS.autoaugment_policy,
    )
    path = augment.save_augmentation_grid(
        images, augmenter, FLAGS.num_views, FLAGS.output, min_side=FLAGS.min_side
    )
    logging.info("Wrote %s (%d images x %d views).", path, len(images), FLAGS.num_views)


def run():
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
