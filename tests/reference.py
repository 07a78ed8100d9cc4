"""Independent float64 NumPy transcriptions of the paper's equations (test oracles).

Written as plain loops over anchors and contrasts, directly from Eq. 2 and Eq. 3 of
Khosla et al. (2020), sharing no code with `supcon_tf`.
"""

import math

import numpy as np


def _normalize(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _logsumexp(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def as_views(features):
    features = np.asarray(features, dtype=np.float64)
    if features.ndim == 2:
        features = features[:, None, :]
    return features.reshape(features.shape[0], features.shape[1], -1)


def positives_from(labels, batch_size, mask=None):
    """Returns a function `positive(i, j)` over sample indices."""

    def positive(i, j):
        if i == j:
            return True
        if mask is not None:
            return bool(mask[i][j])
        if labels is None:
            return False
        labels_array = np.asarray(labels)
        if labels_array.ndim == 2 and labels_array.shape[1] != 1:
            return bool(np.any((labels_array[i] > 0) & (labels_array[j] > 0)))
        flat = labels_array.reshape(-1)
        return flat[i] == flat[j]

    return positive


def supcon_reference(
    features,
    labels=None,
    temperature=0.1,
    base_temperature=None,
    contrast_mode="all",
    summation="out",
    mask=None,
    normalize=True,
    memory=None,
    memory_labels=None,
):
    """Per-sample SupCon loss, Eq. 2 ("out") or Eq. 3 ("in"), in float64.

    `memory` (`[K, D]` or `[K, V, D]`) holds extra contrast samples (a memory bank):
    never anchors, in every anchor's denominator, positives when `memory_labels[k]`
    equals (or, multi-hot, overlaps) the anchor's label; without labels never.
    """
    f = as_views(features)
    m = as_views(memory) if memory is not None else np.zeros((0, 1, f.shape[2]))
    if normalize:
        f = _normalize(f)
        m = _normalize(m) if len(m) else m
    batch, views, _ = f.shape
    base_temperature = temperature if base_temperature is None else base_temperature
    positive = positives_from(labels, batch, mask)

    def memory_positive(b, k):
        if labels is None:
            return False
        anchor, stored = np.asarray(labels)[b], np.asarray(memory_labels)[k]
        if np.ndim(anchor) == 1 and np.size(anchor) != 1:
            return bool(np.any((anchor > 0) & (stored > 0)))
        return np.reshape(anchor, -1)[0] == np.reshape(stored, -1)[0]

    anchor_views = range(views) if contrast_mode == "all" else [0]
    contrasts = [("batch", b, v) for b in range(batch) for v in range(views)]
    contrasts += [("memory", k, v) for k in range(len(m)) for v in range(m.shape[1])]

    def vector(contrast):
        source, index, view = contrast
        return (f if source == "batch" else m)[index, view]

    def is_positive(b, contrast):
        source, index, _ = contrast
        return positive(b, index) if source == "batch" else memory_positive(b, index)

    per_sample = np.zeros(batch)
    for b in range(batch):
        total = 0.0
        for v in anchor_views:
            others = [c for c in contrasts if c != ("batch", b, v)]
            sims = {c: float(f[b, v] @ vector(c)) / temperature for c in others}
            pos = [c for c in others if is_positive(b, c)]
            if not pos:
                continue  # no positive: contributes 0
            log_denominator = _logsumexp([sims[c] for c in others])
            if summation == "out":
                value = -sum(sims[p] - log_denominator for p in pos) / len(pos)
            else:
                value = -math.log(sum(math.exp(sims[p] - log_denominator) for p in pos) / len(pos))
            total += value * temperature / base_temperature
        per_sample[b] = total / len(anchor_views)
    return per_sample


def npairs_reference(labels, logits):
    """`tfa.losses.npairs_loss` as TensorFlow Addons defined it, transcribed in float64.

    For each row i: target t_ij = [y_i == y_j] / #{j : y_j == y_i}, loss_i =
    -sum_j t_ij log softmax(logits_i)_j; the result is the mean over rows.
    """
    labels = np.asarray(labels).reshape(-1)
    logits = np.asarray(logits, dtype=np.float64)
    losses = []
    for i in range(len(labels)):
        same = [j for j in range(len(labels)) if labels[j] == labels[i]]
        log_z = _logsumexp(list(logits[i]))
        losses.append(-sum(logits[i, j] - log_z for j in same) / len(same))
    return float(np.mean(losses))


def variant_reference(
    features,
    labels=None,
    temperature=0.1,
    contrast_mode="all",
    summation="out",
    denominator_mode="all",
    positives_cap=None,
    mask=None,
    weights=None,
    normalize=True,
):
    """Per-sample loss of the denominator / cap / weight variants, in float64 loops.

    For anchor view i, with s_ic = z_i.z_c / tau, pair weights w_ic (1 for a positive,
    0 else, or the given `weights`; the anchor's own sample always 1), positives
    P(i) = {c != i : w_ic > 0} after the cap, negatives N(i) = {c : w_ic = 0} (before
    the cap) and W_i = sum_{p in P(i)} w_ip, the probability of positive p is

        "all" (Khosla et al. 2020, Eq. 2):  exp(s_ip) / sum_{a in P(i) + N(i)} exp(s_ia)
        "one_positive" (SINCERE, Feeney & Hughes, arXiv 2309.14277;
            google-research ONE_POSITIVE):  exp(s_ip) / (exp(s_ip) + sum_{n in N(i)} exp(s_in))
        "only_negatives" (DCL, Yeh et al., ECCV 2022, supervised form;
            google-research ONLY_NEGATIVES):  exp(s_ip) / sum_{n in N(i)} exp(s_in)

    and the loss is -sum_p w_ip log prob_p / W_i ("out", Eq. 2) or
    -log(sum_p w_ip prob_p / W_i) ("in", Eq. 3). The cap (google-research
    `positives_cap`) keeps the anchor's own other views and the views of the first
    `cap / V` other positive samples in batch order; the rest leave P(i) and N(i).
    An anchor with no positive, or (not "all") no negative, contributes 0.
    """
    f = as_views(features)
    if normalize:
        f = _normalize(f)
    batch, views, _ = f.shape
    positive = positives_from(labels, batch, mask)

    def weight(b, c):
        if b == c:
            return 1.0
        if weights is not None:
            return float(weights[b][c])
        return 1.0 if positive(b, c) else 0.0

    anchor_views = range(views) if contrast_mode == "all" else [0]
    per_sample = np.zeros(batch)
    for b in range(batch):
        others = [c for c in range(batch) if c != b and weight(b, c) > 0]
        kept = others if positives_cap is None else others[: positives_cap // views]
        total = 0.0
        for v in anchor_views:
            sims = {
                (c, u): float(f[b, v] @ f[c, u]) / temperature
                for c in range(batch)
                for u in range(views)
            }
            pos = [(c, u) for (c, u) in sims if (c in kept or c == b) and (c, u) != (b, v)]
            neg = [(c, u) for (c, u) in sims if weight(b, c) == 0]
            if not pos or (denominator_mode != "all" and not neg):
                continue
            w = {p: weight(b, p[0]) for p in pos}
            total_weight = sum(w.values())
            log_prob = {}
            for p in pos:
                if denominator_mode == "all":
                    log_den = _logsumexp([sims[a] for a in pos + neg])
                elif denominator_mode == "one_positive":
                    log_den = _logsumexp([sims[p]] + [sims[n] for n in neg])
                else:
                    log_den = _logsumexp([sims[n] for n in neg])
                log_prob[p] = sims[p] - log_den
            if summation == "out":
                value = -sum(w[p] * log_prob[p] for p in pos) / total_weight
            else:
                value = -math.log(sum(w[p] * math.exp(log_prob[p]) for p in pos) / total_weight)
            total += value
        per_sample[b] = total / len(anchor_views)
    return per_sample
