# %% [markdown]
# # Use the SupCon loss in your own model
#
# {colab_badge}
#
# `SupervisedContrastiveLoss` is an ordinary `keras.losses.Loss`: any model whose
# output is an embedding `[B, D]` (one view) or `[B, V, D]` (several views) can be
# compiled with it. This notebook trains an encoder of our own on scikit-learn's
# digits (bundled, no download), then shows a custom training loop with custom
# positives.

# %%
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
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from supcon_tf import SupervisedContrastiveLoss, supervised_contrastive_loss

SMALL = os.environ.get("SUPCON_NOTEBOOK_SMALL") == "1"  # CI runs the notebooks small
EPOCHS = 3 if SMALL else 30
keras.utils.set_random_seed(0)

digits = load_digits()
images = (digits.images[..., None] / 16.0).astype("float32")  # [1797, 8, 8, 1] in [0, 1]
x_train, x_test, y_train, y_test = train_test_split(
    images, digits.target, test_size=0.25, random_state=0, stratify=digits.target
)
print(x_train.shape, x_test.shape)

# %% [markdown]
# ## Any encoder, two augmented views, one compile
#
# The model below draws two random views of each image with Keras preprocessing layers
# (active only in training), encodes both with the *same* encoder and stacks them into
# `[B, 2, D]`: exactly what the loss expects.

# %%
encoder = keras.Sequential(
    [
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
    ],
    name="encoder",
)
projection = keras.Sequential([keras.layers.Dense(64, activation="relu"), keras.layers.Dense(32)])
augment = keras.Sequential(
    [keras.layers.RandomTranslation(0.15, 0.15, fill_mode="constant"), keras.layers.RandomRotation(0.05)]
)

inputs = keras.Input((8, 8, 1))
views = [projection(encoder(augment(inputs))) for _ in range(2)]
outputs = keras.layers.Lambda(lambda pair: tf.stack(pair, axis=1))(views)
pretrainer = keras.Model(inputs, outputs)

pretrainer.compile(optimizer=keras.optimizers.Adam(3e-3), loss=SupervisedContrastiveLoss(temperature=0.1))
history = pretrainer.fit(x_train, y_train, batch_size=128, epochs=EPOCHS, verbose=0)
plt.figure(figsize=(4, 3))
plt.plot(history.history["loss"])
plt.xlabel("epoch")
plt.ylabel("SupCon loss")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Phase 2: a linear classifier on the frozen encoder

# %%
encoder.trainable = False
probe_inputs = keras.Input((8, 8, 1))
probe = keras.Model(probe_inputs, keras.layers.Dense(10)(encoder(probe_inputs, training=False)))
probe.compile(
    optimizer=keras.optimizers.Adam(1e-2),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
probe.fit(x_train, y_train, batch_size=128, epochs=EPOCHS, verbose=0)
print("linear probe test accuracy:", probe.evaluate(x_test, y_test, verbose=0)[1])

# %% [markdown]
# ## A custom training loop with custom positives
#
# The functional form `supervised_contrastive_loss` returns per-sample values and
# accepts a `positive_mask`: here, digits count as positives when they have the same
# parity, a coarser notion of "same class".

# %%
encoder.trainable = True
optimizer = keras.optimizers.Adam(1e-3)
dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(2048, seed=0).batch(128)


@tf.function
def train_step(batch_images, batch_labels):
    parity = batch_labels % 2
    mask = tf.equal(parity[:, None], parity[None, :])
    with tf.GradientTape() as tape:
        embeddings = pretrainer(batch_images, training=True)
        loss = tf.reduce_mean(supervised_contrastive_loss(None, embeddings, positive_mask=mask))
    variables = pretrainer.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss


for epoch in range(2 if SMALL else 5):
    losses = [float(train_step(batch_images, batch_labels)) for batch_images, batch_labels in dataset]
    print(f"epoch {epoch}: parity-positive loss {np.mean(losses):.4f}")
