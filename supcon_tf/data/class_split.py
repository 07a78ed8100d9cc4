"""The class-disjoint protocol of metric learning: train on some classes, evaluate on the rest.

`split_classes` divides a dataset's `DatasetSplits` by class: the models of a run train
on the `seen` classes, and retrieval and a linear probe measure them on the `unseen`
ones, never seen in training. `SPLITS` names the two protocols a run takes (`--split`).

Example:

>>> from supcon_tf.data.arrays import load_dataset
>>> seen, unseen = split_classes(load_dataset("digits"))
>>> seen.class_names, unseen.class_names
(('0', '1', '2', '3', '4'), ('5', '6', '7', '8', '9'))
"""

import numpy as np

from supcon_tf import checks
from supcon_tf.data.arrays import DatasetSplits
from supcon_tf.errors import UsageError

SPLITS = ("standard", "class_disjoint")


def check_unseen_classes(unseen_classes):
    """`unseen_classes` as a sorted list of distinct class ids (ints >= 0), else `UsageError`.

    Only the form is checked here; whether the ids exist in a dataset is `split_classes`'s
    check, once the dataset is loaded.

    Example:

    >>> check_unseen_classes((7, 5, 6))
    [5, 6, 7]
    >>> check_unseen_classes([5, 5])
    Traceback (most recent call last):
    ...
    supcon_tf.errors.UsageError: `unseen_classes` lists class 5 twice; list each class once.
    """
    if isinstance(unseen_classes, (str, bytes)) or not hasattr(unseen_classes, "__iter__"):
        raise UsageError(
            f"`unseen_classes` must be a list of class ids such as [5, 6, 7, 8, 9], got "
            f"{unseen_classes!r}."
        )
    ids = [checks.integer("unseen_classes", value, minimum=0) for value in unseen_classes]
    if not ids:
        raise UsageError(
            "`unseen_classes` is empty: no class would be held out of training; list the "
            "unseen class ids (e.g. 5,6,7,8,9), or drop it for the second half of the classes."
        )
    for value in ids:
        if ids.count(value) > 1:
            raise UsageError(f"`unseen_classes` lists class {value} twice; list each class once.")
    return sorted(ids)


def split_classes(splits, unseen_classes=None):
    """`(seen, unseen)`: a dataset divided by class, for the class-disjoint protocol.

    The models of a run train on the `seen` classes only (all their training,
    validation and test images); the `unseen` classes are kept for evaluation: retrieval
    among their test images, and a linear probe trained on their training images. Each
    part is a `DatasetSplits` whose labels are renumbered `0..C-1` in the order of the
    original class ids (its `class_names` keep the original names); every image keeps the
    split (train, validation, test) it had, so the parts are as seeded as `load_dataset`.

    Args:
        splits: a `DatasetSplits`.
        unseen_classes: the class ids held out of training (see `check_unseen_classes`);
            `None`: the second half of the class ids, `num_classes // 2` of them (5-9 of
            CIFAR-10; with an odd number of classes, training keeps the extra one).

    Returns:
        `(seen, unseen)` `DatasetSplits`, each of at least two classes.

    Raises:
        UsageError: a class id that is not one of the dataset's, or fewer than two
            classes left on either side.

    Example:

    >>> from supcon_tf.data.arrays import load_dataset
    >>> splits = load_dataset("digits")
    >>> seen, unseen = split_classes(splits, unseen_classes=[0, 9])
    >>> seen.num_classes, unseen.class_names, sorted(set(unseen.y_test.tolist()))
    (8, ('0', '9'), [0, 1])
    """
    num_classes = splits.num_classes
    if unseen_classes is None:
        unseen = list(range(num_classes - num_classes // 2, num_classes))
    else:
        unseen = check_unseen_classes(unseen_classes)
    outside = [value for value in unseen if value >= num_classes]
    if outside:
        raise UsageError(
            f"`unseen_classes` {outside} are not class ids of {splits.name}, which has "
            f"{num_classes} classes (0..{num_classes - 1}); list ids in that range."
        )
    seen = [value for value in range(num_classes) if value not in unseen]
    for side, ids in (("seen (trained)", seen), ("unseen", unseen)):
        if len(ids) < 2:
            raise UsageError(
                f"The class-disjoint split of {splits.name} ({num_classes} classes, unseen "
                f"{unseen}) leaves {len(ids)} {side} class(es); each side needs at least 2 "
                "(a classifier, and retrieval, need two classes): list other unseen classes."
            )
    return _keep_classes(splits, seen), _keep_classes(splits, unseen)


def _keep_classes(splits, class_ids):
    """`splits` restricted to `class_ids` (sorted), labels renumbered `0..len-1`."""
    codes = np.full(splits.num_classes, -1, dtype=np.int32)
    codes[class_ids] = np.arange(len(class_ids), dtype=np.int32)

    def keep(images, labels):
        chosen = codes[labels] >= 0
        return images[chosen], codes[labels[chosen]]

    return DatasetSplits(
        *keep(splits.x_train, splits.y_train),
        *keep(splits.x_val, splits.y_val),
        *keep(splits.x_test, splits.y_test),
        class_names=tuple(splits.class_names[index] for index in class_ids),
        name=splits.name,
    )
