"""A validation split held out of TFRecord shards: records chosen by a stateless hash.

A record is held out for validation when a hash of `(seed, shard index, record index
within the shard)` falls below `fraction`. The choice depends on nothing else, so the
held-out records are the same on every run, whatever the file order, the number of
input pipelines (workers, replicas) or the interleaving, and the records that train are
exactly the others. The hash is SplitMix64's finaliser applied in turn to the seed, the
shard and the record (unsigned 64-bit arithmetic, wrapping); its top 53 bits, read as a
fraction of 2**53, are compared with `fraction`. `Holdout.keeps` computes it in
`tf.data` (a filter on the records as they stream) and `count_held_out` in NumPy, from
the shards' record counts alone, so that the split's size is exact before any record is
read (steps per epoch and the report need it).

Example:

>>> count_held_out([100, 100, 57], seed=0, fraction=0.1)
16
>>> held_out_records(100, shard=0, seed=0, fraction=0.1).tolist()
[4, 8, 18, 31, 39, 42, 76, 83]
>>> holdout = Holdout(seed=0, fraction=0.1, validation=True)
>>> [record for record in range(100) if holdout.keeps(0, record)]
[4, 8, 18, 31, 39, 42, 76, 83]
"""

import dataclasses

import numpy as np
import tensorflow as tf

# SplitMix64 (Steele, Lea and Flood 2014): the increment and the finaliser's multipliers.
_INCREMENT = 0x9E3779B97F4A7C15
_MULTIPLIERS = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
_SHIFTS = (30, 27, 31)
_FRACTION_BITS = 53


def _mix(value, xor, shift, constant):
    """SplitMix64's output for the state `value` (uint64 arrays or tensors)."""
    value = value + constant(_INCREMENT)
    value = xor(value, shift(value, constant(_SHIFTS[0]))) * constant(_MULTIPLIERS[0])
    value = xor(value, shift(value, constant(_SHIFTS[1]))) * constant(_MULTIPLIERS[1])
    return xor(value, shift(value, constant(_SHIFTS[2])))


def _hash(seed, shard, record, xor, shift, constant):
    state = _mix(seed, xor, shift, constant) + shard
    state = _mix(state, xor, shift, constant) + record
    return shift(_mix(state, xor, shift, constant), constant(64 - _FRACTION_BITS))


def _threshold(fraction):
    """Hashes below this integer are held out (`fraction * 2**53`, exact in float64)."""
    return int(float(fraction) * 2**_FRACTION_BITS)


def _numpy_hash(seed, shard, records):
    records = np.asarray(records, np.uint64)
    with np.errstate(over="ignore"):
        return _hash(
            np.full_like(records, seed),
            np.full_like(records, shard),
            records,
            np.bitwise_xor,
            np.right_shift,
            np.uint64,
        )


def held_out_records(shard_length, shard, seed, fraction):
    """The indices of the held-out records of shard `shard` (NumPy; for tests and counts)."""
    hashes = _numpy_hash(seed, shard, np.arange(shard_length, dtype=np.uint64))
    return np.flatnonzero(hashes < np.uint64(_threshold(fraction)))


def count_held_out(shard_lengths, seed, fraction):
    """How many records of shards with `shard_lengths` records are held out (exact).

    Memory holds one shard's hashes at a time.
    """
    return sum(
        len(held_out_records(length, shard, seed, fraction))
        for shard, length in enumerate(shard_lengths)
    )


@dataclasses.dataclass(frozen=True)
class Holdout:
    """Which records of a split's shards it reads: the held-out ones, or the others.

    Attributes:
        seed: seed of the hash (a non-negative integer).
        fraction: share of records held out, in `(0, 1)`.
        validation: True to keep the held-out records (the validation split), False to
            keep the others (the training split).
    """

    seed: int
    fraction: float
    validation: bool

    def keeps(self, shard, record):
        """Whether record `record` (int64) of shard `shard` (its index) belongs to the split."""

        def constant(value):
            return tf.constant(value, tf.uint64)

        hashed = _hash(
            constant(self.seed),
            tf.cast(shard, tf.uint64),
            tf.cast(record, tf.uint64),
            tf.bitwise.bitwise_xor,
            tf.bitwise.right_shift,
            constant,
        )
        return (hashed < constant(_threshold(self.fraction))) == self.validation
