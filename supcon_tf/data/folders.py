"""Lists an image-folder dataset: `<root>/<split>/<class>/<image>`, through `tf.io.gfile`.

The class order is the sorted names of the class folders under `<root>/train/`; files
whose extension is not an image's are ignored. Reading goes through `tf.io.gfile`, so
`gs://` folders work as local ones.

Example:

>>> import os, tempfile
>>> root = tempfile.mkdtemp()
>>> for split, name in (("train", "cat"), ("train", "dog"), ("test", "cat")):
...     os.makedirs(os.path.join(root, split, name))
...     open(os.path.join(root, split, name, "1.jpg"), "wb").close()
>>> class_names = list_classes(root)
>>> class_names
('cat', 'dog')
>>> paths, labels = list_images(root, "test", class_names)
>>> [os.path.relpath(path, root) for path in paths], labels
(['test/cat/1.jpg'], [0])
"""

import tensorflow as tf

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _join(*parts):
    return "/".join(part.rstrip("/") for part in parts)


def split_folder(root, split):
    """`<root>/<split>`, or `FileNotFoundError` saying which folder is missing."""
    folder = _join(str(root), split)
    if not tf.io.gfile.isdir(folder):
        raise FileNotFoundError(
            f"Image-folder dataset {root} has no {split}/ folder; expected "
            f"{root}/train/<class>/*.jpg and {root}/test/<class>/*.jpg."
        )
    return folder


def _subfolders(folder):
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(folder))
    return sorted(name for name in names if tf.io.gfile.isdir(_join(folder, name)))


def list_classes(root):
    """The sorted class-folder names under `<root>/train/` (the label order).

    Raises:
        FileNotFoundError: `<root>/train/` or `<root>/test/` is missing.
        ValueError: no class folders, or `test/` has a class that `train/` lacks.
    """
    train_dir, test_dir = split_folder(root, "train"), split_folder(root, "test")
    class_names = tuple(_subfolders(train_dir))
    if not class_names:
        raise ValueError(f"{train_dir} has no class sub-folders.")
    unknown = [name for name in _subfolders(test_dir) if name not in class_names]
    if unknown:
        raise ValueError(
            f"{test_dir} has classes {unknown} that {train_dir} lacks; both splits need the "
            f"same class folders {list(class_names)}."
        )
    return class_names


def list_images(root, split, class_names):
    """`(paths, labels)` of the images of one split, class by class, sorted by name.

    A class folder missing from a split is allowed (that split has no images of the
    class); a class folder that exists but holds no image is an error.

    Raises:
        ValueError: a class folder without images, or a split without any image.
    """
    folder = split_folder(root, split)
    paths, labels = [], []
    for label, class_name in enumerate(class_names):
        class_dir = _join(folder, class_name)
        if not tf.io.gfile.isdir(class_dir):
            continue
        names = sorted(
            name
            for name in tf.io.gfile.listdir(class_dir)
            if name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not names:
            raise ValueError(
                f"Class folder {class_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "remove it or add its images."
            )
        paths.extend(_join(class_dir, name) for name in names)
        labels.extend([label] * len(names))
    if not paths:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found under {folder}.")
    return paths, labels
