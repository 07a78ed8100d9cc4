"""`supcon-augment-preview`: writes a PNG grid of images and their augmented views.

Each row shows one image, then `--num_views` views drawn by the `--augment` policy,
so a user sees what the encoder sees during contrastive pretraining.

Usage (also `python -m supcon_tf.cli.augment_preview`):

    supcon-augment-preview --augment=simaugment --augment_strength=0.5 --num_views=4 \
        --dataset=digits --output=preview.png

The flags the trainer also has (`--augment`, `--augment_magnitude`,
`--augment_strength`, `--crop_min_area`, `--dataset`, `--data_dir`, `--image_size`,
`--seed`) mean the same here. A mistake prints one line,
`supcon-augment-preview: error: <what is wrong>; <what to do>`.
"""

import numpy as np
from absl import flags

from supcon_tf import augment
from supcon_tf.cli.console import entry_point
from supcon_tf.data import load_dataset

FLAGS = flags.FLAGS

# The flags by group, in the order `--help` lists them.
FLAG_GROUPS = {
    "data": ("dataset", "data_dir", "num_images", "seed"),
    "augmentation": (
        "augment",
        "augment_magnitude",
        "augment_strength",
        "num_layers",
        "crop_min_area",
        "blur",
        "autoaugment_policy",
        "image_size",
    ),
    "output": ("output", "num_views", "min_side"),
}


def define_flags(flag_values=flags.FLAGS):
    """Defines the flags (once) on `flag_values`; called by `run`, not at import.

    Defining them at import would clash with `supcon-train`'s flags of the same names
    (`--dataset`, `--seed`, ...) whenever both modules are imported in one process.
    """
    if "num_views" in flag_values:
        return
    policies = tuple(augment.AUTOAUGMENT_POLICIES)
    for define, name, default, help_text, options in (
        (
            flags.DEFINE_enum,
            "augment",
            "simaugment",
            "Augmentation policy.",
            {"enum_values": augment.AUGMENTATIONS},
        ),
        (
            flags.DEFINE_string,
            "dataset",
            "digits",
            "Dataset name (digits offline; cifar10, mnist, ... downloaded by Keras), an .npz "
            "file (x_train, y_train, x_test, y_test) or a folder with train/<class>/ and "
            "test/<class>/.",
            {},
        ),
        (flags.DEFINE_string, "data_dir", None, "Folder with local copies of named datasets.", {}),
        (
            flags.DEFINE_string,
            "output",
            "augment_preview.png",
            "Path of the PNG grid to write.",
            {},
        ),
        (flags.DEFINE_integer, "num_images", 8, "Images (rows) to show.", {"lower_bound": 1}),
        (
            flags.DEFINE_integer,
            "num_views",
            4,
            "Augmented views (columns) per image.",
            {"lower_bound": 1},
        ),
        (
            flags.DEFINE_integer,
            "image_size",
            0,
            "Output side of the crops; 0 keeps the input.",
            {"lower_bound": 0},
        ),
        (
            flags.DEFINE_float,
            "augment_magnitude",
            9.0,
            "RandAugment magnitude in [0, 10].",
            {"lower_bound": 0.0, "upper_bound": 10.0},
        ),
        (
            flags.DEFINE_float,
            "augment_strength",
            1.0,
            "Colour-jitter strength s of SimAugment.",
            {"lower_bound": 1e-6},
        ),
        (
            flags.DEFINE_integer,
            "num_layers",
            2,
            "RandAugment operations per image.",
            {"lower_bound": 1},
        ),
        (
            flags.DEFINE_float,
            "crop_min_area",
            0.08,
            "Smallest random-resized crop (fraction of the area); 1 shows whole images.",
            {"lower_bound": 1e-6, "upper_bound": 1.0},
        ),
        (flags.DEFINE_bool, "blur", False, "Add SimCLR's Gaussian blur to SimAugment.", {}),
        (
            flags.DEFINE_enum,
            "autoaugment_policy",
            "imagenet",
            "AutoAugment policy.",
            {"enum_values": policies},
        ),
        (flags.DEFINE_integer, "seed", 0, "Seed of the image choice and the augmentations.", {}),
        (
            flags.DEFINE_integer,
            "min_side",
            64,
            "Cells are enlarged to at least this many pixels.",
            {"lower_bound": 1},
        ),
    ):
        define(name, default, help=help_text, flag_values=flag_values, **options)


def load_preview_images(dataset, num_images, data_dir=None, seed=0):
    """Returns `num_images` training images of `dataset`, float32 in [0, 1].

    Args:
        dataset: anything `supcon_tf.data.load_dataset` reads (a name, an .npz file or
            a folder with train/<class>/ and test/<class>/ images).
        num_images: how many images to draw (all of them when there are fewer).
        data_dir: folder with local copies of named datasets.
        seed: seed of the draw.
    """
    images = load_dataset(dataset, data_dir, validation_fraction=0.0, seed=seed).x_train
    chosen = np.random.default_rng(seed).choice(
        len(images), min(num_images, len(images)), replace=False
    )
    return images[np.sort(chosen)]


def main(argv):
    images = load_preview_images(FLAGS.dataset, FLAGS.num_images, FLAGS.data_dir, FLAGS.seed)
    augmenter = augment.build_augmenter(
        FLAGS.augment,
        seed=FLAGS.seed,
        image_size=FLAGS.image_size or None,
        magnitude=FLAGS.augment_magnitude,
        strength=FLAGS.augment_strength,
        num_layers=FLAGS.num_layers,
        min_crop_area=FLAGS.crop_min_area,
        blur=FLAGS.blur,
        autoaugment_policy=FLAGS.autoaugment_policy,
    )
    path = augment.save_augmentation_grid(
        images, augmenter, FLAGS.num_views, FLAGS.output, min_side=FLAGS.min_side
    )
    print(f"Wrote {path} ({len(images)} images x {FLAGS.num_views} views)")


run = entry_point(main, "supcon-augment-preview", __doc__, FLAG_GROUPS, define_flags)


if __name__ == "__main__":
    run()
