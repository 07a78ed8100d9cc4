"""Which loss kernel runs, and with how many rows per block: the memory budget of "auto".

`implementation="auto"` computes the loss densely while the dense kernel's working set
fits a memory budget, and in row blocks beyond it:

* the dense kernel keeps `DENSE_LIVE_MATRICES` matrices of `K x M` similarities alive at
  its peak (K anchor views, M contrast views): the product, and its exponentials, which
  the backward pass reuses; the budget is compared with
  `DENSE_LIVE_MATRICES * K * M * itemsize` bytes (`dense_working_set`);
* the default budget is `SYMMETRIC_DENSE_MEMORY_BUDGET` (64 MiB: dense up to 1024 x 2 views
  of float32) where the blocked kernel can use the symmetry of the similarities (the usual
  case: every view an anchor on one replica, summation "out"), because that kernel is the
  faster one from 2048 x 2 views on; elsewhere `DEFAULT_DENSE_MEMORY_BUDGET` (1 GiB: dense up
  to 4096 x 2 views, 805 MB, where the row-block kernel is the slower one);
* a loss takes `dense_memory_budget=` (bytes; `None` for this default): raise it to keep
  larger batches dense on a machine with the memory, lower it to bound the memory.

When the size is unknown while the graph is built (a `model.fit` batch dimension, a partial
last batch, a gathered global batch), both kernels go into the graph and a `tf.cond` picks
one from the actual size at run time; under XLA the kernel is blocked then (XLA's
conditionals would make the blocked branch carry the dense branch's matrices).

Example:

>>> choose_implementation("auto", 8192, 8192)
'dense'
>>> choose_implementation("auto", 16384, 16384)
'blocked'
>>> choose_implementation("auto", 16384, 16384, memory_budget=4 * 2**30)
'dense'
>>> choose_implementation("auto", None, 8192)
'run time'
"""

import tensorflow as tf

from supcon_tf import checks

IMPLEMENTATIONS = ("auto", "dense", "blocked")

# Matrices of K x M similarities alive at once in the dense kernel's forward + backward:
# the shifted product and its exponentials (kept for the backward pass, whose two products
# need no other K x M matrix). Checked by `benchmarks/loss.py --worker dense`.
DENSE_LIVE_MATRICES = 3

# "auto" stays dense while `dense_working_set` is at most this many bytes (1 GiB).
DEFAULT_DENSE_MEMORY_BUDGET = 2**30
# Where the blocked kernel computes each similarity once (`supcon_tf.losses.symmetric`:
# contrast_mode "all" on one replica, summation "out" with label or SimCLR positives), it
# is the faster kernel from 2048 x 2 views on (measured on a 2-core CPU: 1.2x the matmul
# floor against dense's 1.9x), so "auto" keeps only up to 1024 x 2 views (50 MB) dense there.
SYMMETRIC_DENSE_MEMORY_BUDGET = 64 * 2**20

# Default rows per block: about this many similarities (8 MB in float32) per block, and
# at least MIN_BLOCK_ROWS rows (for M = 131072 contrasts: 128 MB per block).
DEFAULT_BLOCK_ELEMENTS = 2**21
MIN_BLOCK_ROWS = 256


def check_implementation(implementation, block_size, dense_memory_budget=None):
    """Validates the kernel options of a loss.

    Args:
        implementation: one of `IMPLEMENTATIONS`.
        block_size: `None` (automatic) or a positive number of anchor rows per block.
        dense_memory_budget: `None` (`DEFAULT_DENSE_MEMORY_BUDGET`) or the bytes "auto"
            lets the dense kernel use, a non-negative integer.

    Example:

    >>> check_implementation("blocked", 256)
    >>> check_implementation("tiled", None)
    Traceback (most recent call last):
    ...
    ValueError: Unknown `implementation`='tiled'. Expected one of ('auto', 'dense', 'blocked'): 'dense' materialises the whole similarity matrix (fast for small batches), 'blocked' streams over row blocks (memory O(N x block_size)), 'auto' picks dense while it fits `dense_memory_budget`.
    >>> check_implementation("auto", None, dense_memory_budget="1GB")
    Traceback (most recent call last):
    ...
    supcon_tf.errors.UsageError: `dense_memory_budget` must be an integer >= 0, got '1GB' (str).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"Unknown `implementation`={implementation!r}. Expected one of {IMPLEMENTATIONS}: "
            "'dense' materialises the whole similarity matrix (fast for small batches), "
            "'blocked' streams over row blocks (memory O(N x block_size)), 'auto' picks "
            "dense while it fits `dense_memory_budget`."
        )
    if block_size is not None and (
        isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1
    ):
        raise ValueError(
            "`block_size` must be None (automatic) or a positive integer number of anchor "
            f"rows per block, got {block_size!r}."
        )
    if dense_memory_budget is not None:
        checks.integer("dense_memory_budget", dense_memory_budget, minimum=0)


def dense_working_set(num_anchors, num_contrasts, itemsize=4):
    """Bytes of the `K x M` matrices the dense kernel keeps alive at once.

    Example:

    >>> dense_working_set(8192, 8192)  # 4096 x 2 views in float32
    805306368
    """
    return DENSE_LIVE_MATRICES * num_anchors * num_contrasts * itemsize


def choose_implementation(
    implementation, num_anchors, num_contrasts, in_xla=False, memory_budget=None, itemsize=4
):
    """Resolves `"auto"` from the static similarity-matrix size, when it is known.

    Args:
        implementation: `"auto"`, `"dense"` or `"blocked"`.
        num_anchors: static number K of anchor views (rows), or None when unknown.
        num_contrasts: static number M of contrast views (columns), or None.
        in_xla: whether the kernel is being compiled by XLA.
        memory_budget: bytes the dense kernel may use (None: `DEFAULT_DENSE_MEMORY_BUDGET`).
        itemsize: bytes per similarity (4 for float32, 8 for float64).

    Returns:
        `"dense"` or `"blocked"`; `"auto"` gives dense while `dense_working_set` fits the
        budget, else blocked. With an unknown size it returns `"run time"` (the choice is
        made in the graph by `tf.cond`), or `"blocked"` under XLA.

    Example:

    >>> choose_implementation("auto", 8192, 8192, memory_budget=0)
    'blocked'
    """
    if implementation != "auto":
        return implementation
    if num_anchors is None or num_contrasts is None:
        return "blocked" if in_xla else "run time"
    fits = dense_working_set(num_anchors, num_contrasts, itemsize) <= budget_bytes(memory_budget)
    return "dense" if fits else "blocked"


def budget_bytes(memory_budget):
    """The budget in bytes: `memory_budget`, or the default for None."""
    return DEFAULT_DENSE_MEMORY_BUDGET if memory_budget is None else memory_budget


def default_budget(memory_budget, symmetric):
    """`memory_budget`, or for None the default of the kernel that would run blocked.

    >>> default_budget(None, symmetric=True) == SYMMETRIC_DENSE_MEMORY_BUDGET
    True
    >>> default_budget(None, symmetric=False) == DEFAULT_DENSE_MEMORY_BUDGET
    True
    >>> default_budget(123, symmetric=True)
    123
    """
    if memory_budget is not None:
        return memory_budget
    return SYMMETRIC_DENSE_MEMORY_BUDGET if symmetric else DEFAULT_DENSE_MEMORY_BUDGET


def dense_fits(num_anchors, num_contrasts, itemsize, memory_budget):
    """A scalar bool tensor: whether the dense working set of run-time sizes fits the budget."""
    elements = tf.cast(num_anchors, tf.int64) * tf.cast(num_contrasts, tf.int64)
    return DENSE_LIVE_MATRICES * itemsize * elements <= budget_bytes(memory_budget)


def default_block_size(num_contrasts):
    """Rows per block: about `DEFAULT_BLOCK_ELEMENTS` similarities, at least `MIN_BLOCK_ROWS`.

    Fewer, larger blocks amortise the per-block accumulation of the `[M, D]` contrast
    gradient (one pass over M x D values per block) and the loop's overhead.

    Args:
        num_contrasts: number M of contrast views (columns of the similarity matrix): a
            Python integer, or a scalar integer tensor when it is known only at run time.

    Returns:
        A positive multiple of 8 (a Python int, or an int32 tensor for a tensor input).

    Example:

    >>> default_block_size(4096)
    512
    >>> default_block_size(131072)
    256
    """
    if isinstance(num_contrasts, int):
        rows = DEFAULT_BLOCK_ELEMENTS // max(num_contrasts, 1)
        return max(MIN_BLOCK_ROWS, rows // 8 * 8)
    rows = DEFAULT_BLOCK_ELEMENTS // tf.maximum(tf.cast(num_contrasts, tf.int32), 1)
    return tf.maximum(MIN_BLOCK_ROWS, rows // 8 * 8)
