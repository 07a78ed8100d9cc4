# %% [markdown]
# # The supervised contrastive loss, explained
#
# {colab_badge}
#
# This notebook takes the loss of Khosla et al., *Supervised Contrastive Learning*
# (NeurIPS 2020) apart with small numbers you can check by hand: what the positives
# are, the two ways of summing over them (Eq. 2 `L_out` and Eq. 3 `L_in`), what the
# temperature does, and how the loss relates to SimCLR and to the `npairs_loss` of
# TensorFlow Addons that the original Keras example used.

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

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

import supcon_tf
from supcon_tf import NPairsLoss, SupervisedContrastiveLoss, npairs_loss, supervised_contrastive_loss

SMALL = os.environ.get("SUPCON_NOTEBOOK_SMALL") == "1"  # CI runs the notebooks small
print("supcon_tf", supcon_tf.__version__, "| TensorFlow", tf.__version__)

# %% [markdown]
# ## The equations
#
# A batch of $B$ samples with $V$ augmented views each gives $N = BV$ embeddings
# $z$, L2-normalised. For an anchor view $i$:
#
# * $A(i)$: every other view in the batch (the anchor itself is excluded),
# * $P(i) \subset A(i)$: the views whose sample has the anchor's label (including the
#   other views of the anchor's own sample).
#
# $$\mathcal{L}^{sup}_{out} = \sum_i \frac{-1}{|P(i)|} \sum_{p \in P(i)}
#   \log \frac{\exp(z_i \cdot z_p / \tau)}{\sum_{a \in A(i)} \exp(z_i \cdot z_a / \tau)}
#   \qquad \text{(Eq. 2)}$$
#
# $$\mathcal{L}^{sup}_{in} = \sum_i -\log \Big\{ \frac{1}{|P(i)|} \sum_{p \in P(i)}
#   \frac{\exp(z_i \cdot z_p / \tau)}{\sum_{a \in A(i)} \exp(z_i \cdot z_a / \tau)} \Big\}
#   \qquad \text{(Eq. 3)}$$
#
# The library returns one value per sample (the mean over its anchor views), and Keras
# averages over the batch.

# %% [markdown]
# ## A batch small enough to do by hand
#
# Three samples, two views each, in 2-D. Samples 0 and 1 are cats, sample 2 is a dog.

# %%
views = np.array(
    [
        [[1.0, 0.0], [0.9, 0.1]],  # cat
        [[0.8, 0.3], [1.0, 0.2]],  # cat
        [[0.0, 1.0], [0.2, 0.9]],  # dog
    ],
    dtype="float32",
)
labels = np.array([0, 0, 1])
temperature = 0.5

# By hand, for anchor (sample 0, view 0):
z = views / np.linalg.norm(views, axis=-1, keepdims=True)
flat = z.reshape(-1, 2)  # rows: (0,0) (0,1) (1,0) (1,1) (2,0) (2,1)
sample_of = np.repeat(np.arange(3), 2)
anchor = 0
others = [j for j in range(6) if j != anchor]
logits = flat[others] @ flat[anchor] / temperature
log_prob = logits - np.log(np.exp(logits).sum())
positives = [k for k, j in enumerate(others) if labels[sample_of[j]] == labels[0]]
by_hand = -log_prob[positives].mean()
print("positives of anchor (0, view 0):", [others[k] for k in positives])
print("L_out for that anchor, by hand:", round(float(by_hand), 5))

# %%
per_anchor_view = supervised_contrastive_loss(labels, views, temperature=temperature, contrast_mode="one")
print("library, contrast_mode='one' (anchors = view 0 only):", per_anchor_view.numpy().round(5))

# %% [markdown]
# The first number equals the hand computation. With `contrast_mode="all"` (the
# default) both views of each sample are anchors and the sample's value is their mean.

# %%
for summation in ("out", "in"):
    values = supervised_contrastive_loss(labels, views, temperature=temperature, summation=summation)
    print(f"summation={summation!r}: per-sample {values.numpy().round(4)}")

# %% [markdown]
# ## `L_out` versus `L_in`
#
# By Jensen's inequality $\mathcal{L}_{in} \le \mathcal{L}_{out}$. The paper finds
# `L_out` trains much better (Table 1): its gradient gives every positive the same
# weight $1/|P(i)|$, while the log outside the mean in `L_in` lets one easy positive
# dominate. Here is the gap on random batches as the number of positives grows.

# %%
rng = np.random.default_rng(0)
positives_per_class, gaps = [2, 4, 8, 16], []
for count in positives_per_class:
    batch = rng.normal(size=(4 * count, 2, 16)).astype("float32")
    batch_labels = np.repeat(np.arange(4), count)
    out = supervised_contrastive_loss(batch_labels, batch, summation="out").numpy().mean()
    inside = supervised_contrastive_loss(batch_labels, batch, summation="in").numpy().mean()
    gaps.append(out - inside)
plt.figure(figsize=(4, 3))
plt.plot(positives_per_class, gaps, marker="o")
plt.xlabel("samples per class in the batch")
plt.ylabel("L_out - L_in")
plt.title("The gap grows with |P(i)|")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Temperature
#
# The temperature $\tau$ sharpens the softmax over contrasts. Small $\tau$ focuses the
# gradient on hard negatives (those most similar to the anchor); the paper uses
# $\tau = 0.1$. The plot shows the softmax weight each contrast of one anchor gets.

# %%
similarities = np.linspace(-1, 1, 9)
plt.figure(figsize=(5, 3))
for tau in (1.0, 0.5, 0.1, 0.05):
    weights = np.exp(similarities / tau) / np.exp(similarities / tau).sum()
    plt.plot(similarities, weights, marker=".", label=f"tau={tau}")
plt.xlabel("cosine similarity of a contrast to the anchor")
plt.ylabel("softmax weight")
plt.legend()
plt.tight_layout()
plt.show()

# %%
batch = rng.normal(size=(32, 2, 16)).astype("float32")
batch_labels = rng.integers(0, 4, size=32)
taus = np.geomspace(0.02, 1.0, 6 if SMALL else 20)
values = [float(SupervisedContrastiveLoss(temperature=t)(batch_labels, batch)) for t in taus]
plt.figure(figsize=(4, 3))
plt.semilogx(taus, values, marker="o")
plt.xlabel("temperature")
plt.ylabel("loss on a random batch")
plt.tight_layout()
plt.show()

# %% [markdown]
# `base_temperature` rescales the loss by `temperature / base_temperature` (the
# reference PyTorch code uses 0.07), which keeps gradient magnitudes comparable across
# temperatures. The default, `None`, means no rescaling.

# %% [markdown]
# ## What counts as a positive
#
# * integer labels `[B]`: same label;
# * one-hot or multi-hot labels `[B, C]`: at least one label in common;
# * `y_true=None`: SimCLR; only the other views of the same sample;
# * `positive_mask`: any `[B, B]` relation you choose (functional form).
#
# The other views of the same sample are always positives.

# %%
multi_hot = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]], "float32")
four = rng.normal(size=(4, 2, 8)).astype("float32")
print("integer labels  ", supervised_contrastive_loss([0, 0, 1, 2], four).numpy().round(3))
print("multi-hot labels", supervised_contrastive_loss(multi_hot, four).numpy().round(3))
print("SimCLR (None)   ", supervised_contrastive_loss(None, four).numpy().round(3))
near = np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]], bool)
print("custom mask     ", supervised_contrastive_loss(None, four, positive_mask=near).numpy().round(3))

# %% [markdown]
# ## From `tfa.losses.npairs_loss` (the original Keras example)
#
# The Keras example computed `tfa.losses.npairs_loss(labels, z @ z.T / tau)`. There,
# each sample is its own positive and stays in the denominator, so it is *not* the
# paper's loss. `npairs_loss` (same signature as TensorFlow Addons') and `NPairsLoss`
# reproduce it without the retired package.

# %%
single = rng.normal(size=(8, 16)).astype("float32")
single_labels = rng.integers(0, 3, size=8)
unit = single / np.linalg.norm(single, axis=1, keepdims=True)
print("npairs_loss on logits:   ", float(npairs_loss(single_labels, unit @ unit.T / 0.05)))
print("NPairsLoss on embeddings:", float(NPairsLoss(temperature=0.05)(single_labels, single)))
print("SupCon (paper):          ", float(SupervisedContrastiveLoss(temperature=0.05)(single_labels, single)))
