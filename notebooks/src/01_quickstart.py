# %% [markdown]
# # supcon_tf quickstart: SupCon vs cross-entropy on CIFAR-10
#
# {colab_badge}
#
# The two-phase workflow of Khosla et al., *Supervised Contrastive Learning* (NeurIPS
# 2020), end to end:
#
# 1. **Pretrain** an encoder + projection head with `SupervisedContrastiveLoss`: the
#    model draws two augmented views of every image, and all views of the same class
#    attract each other while the rest of the batch repels them.
# 2. **Classify**: train a linear classifier on the frozen encoder.
# 3. Compare with the **cross-entropy baseline** (same encoder, trained end to end),
#    and look at the embeddings.
#
# In Colab choose *Runtime > Change runtime type > GPU or TPU*; the notebook picks the
# matching `tf.distribute` strategy. The settings cell has the sizes; the defaults are a
# short run (ResNet-18, a few epochs). The paper trains for 1000 epochs with batch 1024.

# %%
# Install in Colab; elsewhere the package is expected to be installed already.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/supcon-tf/supcon_tf"],
        check=True,
    )

# %%
import os

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

import supcon_tf
from supcon_tf.augment import build_augmenter
from supcon_tf.data import load_dataset, make_dataset
from supcon_tf.training.distribute import build_strategy, per_replica_batch_size
from supcon_tf.models.encoders import build_encoder
from supcon_tf.models import SupConModel, build_cross_entropy_classifier, build_linear_classifier

# Settings. CI runs this notebook with SUPCON_NOTEBOOK_SMALL=1 on a tiny offline subset.
SMALL = os.environ.get("SUPCON_NOTEBOOK_SMALL") == "1"
DATASET = os.environ.get("SUPCON_NOTEBOOK_DATASET", "digits" if SMALL else "cifar10")
ENCODER = "small_cnn" if SMALL else "resnet18"
WIDTH = 0.25 if SMALL else 1.0
BATCH_SIZE = 64 if SMALL else 512
PRETRAIN_EPOCHS = 2 if SMALL else 30
CLASSIFIER_EPOCHS = 2 if SMALL else 10
TEMPERATURE = 0.1
keras.utils.set_random_seed(0)
print("supcon_tf", supcon_tf.__version__, "| TensorFlow", tf.__version__, "| Keras", keras.__version__)

# %% [markdown]
# ## Accelerator detection
#
# A TPU (Colab sets `COLAB_TPU_ADDR`) gets `TPUStrategy`, several GPUs get
# `MirroredStrategy`, one GPU or a CPU the default strategy. The batch size is
# **global**: the strategy splits it over the replicas, and the loss gathers every
# replica's embeddings so negatives come from the whole global batch.

# %%
if os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME"):
    strategy = build_strategy("tpu")
elif len(tf.config.list_physical_devices("GPU")) > 1:
    strategy = build_strategy("mirrored")
else:
    strategy = build_strategy("default")
print(
    f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replica(s), "
    f"{per_replica_batch_size(BATCH_SIZE, strategy)} images per replica"
)

# %% [markdown]
# ## Data
#
# `load_dataset` returns NumPy splits with a stratified validation split carved from
# the training data (for choosing settings); the test split is used once, at the end.
# Images are float32 in [0, 1].

# %%
splits = load_dataset(DATASET, validation_fraction=0.1, seed=0)
print(
    f"{DATASET}: train {splits.x_train.shape}, validation {splits.x_val.shape}, "
    f"test {splits.x_test.shape}, classes {list(splits.class_names)}"
)
train_data = make_dataset(splits.x_train, splits.y_train, batch_size=BATCH_SIZE, shuffle=True)

# %% [markdown]
# ## What the encoder sees
#
# The augmenter is an ordinary Keras layer (any layer or pipeline works). Each call in
# training mode draws new random parameters, so two calls give two views.

# %%
augmenter = build_augmenter("simple" if splits.x_train.shape[-1] == 3 else "none", seed=0)
originals = splits.x_train[:6]
view_a = np.asarray(augmenter(originals, training=True))
view_b = np.asarray(augmenter(originals, training=True))
figure, axes = plt.subplots(3, 6, figsize=(9, 4.5))
for column in range(6):
    for row, images in enumerate((originals, view_a, view_b)):
        axes[row, column].imshow(np.clip(images[column].squeeze(), 0, 1), cmap="gray")
        axes[row, column].axis("off")
axes[0, 0].set_title("original", loc="left")
axes[1, 0].set_title("view 1", loc="left")
axes[2, 0].set_title("view 2", loc="left")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Phase 1: SupCon pretraining
#
# `SupConModel` draws the views, encodes and projects them and outputs `[B, 2, 128]`;
# `compile` + `fit` with labels is the whole phase (`fit(x)` without labels is SimCLR).

# %%
with strategy.scope():
    encoder = build_encoder(ENCODER, splits.x_train.shape[1:], width_multiplier=WIDTH)
    pretrainer = SupConModel(encoder, augmenter=augmenter, num_views=2)
    pretrainer.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=supcon_tf.SupervisedContrastiveLoss(temperature=TEMPERATURE),
    )
pretrain_history = pretrainer.fit(train_data, epochs=PRETRAIN_EPOCHS, verbose=2)

# %% [markdown]
# ## Phase 2: a linear classifier on the frozen encoder

# %%
with strategy.scope():
    classifier = build_linear_classifier(encoder, splits.num_classes)
    classifier.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
classifier_history = classifier.fit(
    train_data, epochs=CLASSIFIER_EPOCHS, validation_data=(splits.x_val, splits.y_val), verbose=2
)

# %% [markdown]
# ## The cross-entropy baseline: same encoder, same budget, trained end to end

# %%
with strategy.scope():
    baseline = build_cross_entropy_classifier(
        build_encoder(ENCODER, splits.x_train.shape[1:], width_multiplier=WIDTH), splits.num_classes
    )
    baseline.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
augmented_train_data = make_dataset(
    splits.x_train, splits.y_train, batch_size=BATCH_SIZE, shuffle=True, augment=augmenter
)
baseline_history = baseline.fit(
    augmented_train_data,
    epochs=PRETRAIN_EPOCHS + CLASSIFIER_EPOCHS,
    validation_data=(splits.x_val, splits.y_val),
    verbose=2,
)

# %%
supcon_accuracy = classifier.evaluate(splits.x_test, splits.y_test, verbose=0)[1]
baseline_accuracy = baseline.evaluate(splits.x_test, splits.y_test, verbose=0)[1]
print(f"test accuracy  SupCon + linear: {supcon_accuracy:.4f}   cross-entropy: {baseline_accuracy:.4f}")

figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
axes[0].plot(pretrain_history.history["loss"], marker=".")
axes[0].set(title="SupCon pretraining loss", xlabel="epoch")
offset = PRETRAIN_EPOCHS
axes[1].plot(
    np.arange(offset, offset + CLASSIFIER_EPOCHS),
    classifier_history.history["val_accuracy"],
    marker=".",
    label="SupCon + linear (phase 2)",
)
axes[1].plot(baseline_history.history["val_accuracy"], marker=".", label="cross-entropy")
axes[1].set(title="validation accuracy", xlabel="epoch")
axes[1].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The learned embedding space
#
# A 2-D t-SNE of the frozen encoder's features on test images, coloured by class: with
# enough pretraining the classes form tight, separated clusters.

# %%
from sklearn.manifold import TSNE  # noqa: E402

count = 300 if SMALL else 2000
features = encoder.predict(splits.x_test[:count], verbose=0)
features = features / np.linalg.norm(features, axis=1, keepdims=True)
points = TSNE(n_components=2, init="pca", perplexity=min(30, count // 4), random_state=0).fit_transform(
    features
)
plt.figure(figsize=(5, 5))
scatter = plt.scatter(points[:, 0], points[:, 1], c=splits.y_test[:count], cmap="tab10", s=6)
plt.legend(*scatter.legend_elements(), fontsize=7, loc="best", title="class")
plt.title("t-SNE of test features")
plt.axis("off")
plt.show()

# %% [markdown]
# ## Next steps
#
# * The same workflow from the command line, with checkpoints, resumption, TensorBoard
#   logs and a JSON report: `supcon-train --dataset=cifar10 --encoder=resnet18`.
# * Notebook 02 explains the loss; notebook 03 uses it in your own model.
