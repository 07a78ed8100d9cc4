"""Tests of the validation split of streamed TFRecord shards and TFDS datasets.

Oracles: images whose red level encodes their identity (so a crop names its record),
SplitMix64 written out in Python integers, the binomial law of the held-out count,
TFDS's own reader of split slices (`as_dataset(split="train[N:]")`), and the history
Keras recorded (the best epoch is the one of lowest validation loss).
"""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from supcon_tf.data import (
    make_evaluation_stream,
    make_training_stream,
    open_streaming_dataset,
    tfrecords,
    write_shards,
)
from supcon_tf.data.holdout import Holdout, count_held_out, held_out_records
from supcon_tf.data.parsing import _records
from supcon_tf.data.tfrecords import image_example
from supcon_tf.errors import DataError
from supcon_tf.experiment import preflight, run_experiment
from tests._streaming_worker import identities, write_id_folder
from tests.test_preflight import tiny_config
from tests.test_streaming import TFDS_MISSING

NUM_TRAIN, NUM_TEST = 48, 8  # write_id_folder: 2 classes of 24 train and 4 test images
MASK = 2**64 - 1


def splitmix64_oracle(state):
    """SplitMix64's output for `state`, in Python integers (Steele, Lea and Flood 2014)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK
    state = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    state = ((state ^ (state >> 27)) * 0x94D049BB133111EB) & MASK
    return state ^ (state >> 31)


def held_out_oracle(seed, shard, record, fraction):
    state = (splitmix64_oracle(seed) + shard) & MASK
    state = (splitmix64_oracle(state) + record) & MASK
    return (splitmix64_oracle(state) >> 11) < fraction * 2**53


def read(splits, split, input_context=None):
    """The identities of one pass over `split`, in order (central crops of 16 px)."""
    stream = make_evaluation_stream(splits, split, 4, 16, input_context=input_context)
    return [int(identity) for images, _ in stream for identity in identities(images)]


def trained(splits, seed=0, input_context=None, batch_size=1):
    """The identities of one training epoch (first view); batches of 1 read every record."""
    stream = make_training_stream(
        splits, batch_size, 16, views=2, epochs=1, seed=seed, input_context=input_context
    )
    return [int(identity) for images, _ in stream for identity in identities(images[:, 0])]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("valsplit")
    write_id_folder(str(root / "images"))
    write_shards(root / "images", root / "shards", num_shards=4, progress=False)
    return root / "shards"


class TestHoldoutHash:
    def test_numpy_and_tf_match_the_python_oracle(self):
        for seed, shard, fraction in ((0, 0, 0.1), (7, 3, 0.25), (123456789, 1023, 0.5)):
            expected = [
                record for record in range(300) if held_out_oracle(seed, shard, record, fraction)
            ]
            assert held_out_records(300, shard, seed, fraction).tolist() == expected
            for validation in (True, False):
                holdout = Holdout(seed, fraction, validation)
                kept = tf.data.Dataset.range(300).filter(
                    lambda r, h=holdout, s=shard: h.keeps(s, r)
                )
                wanted = expected if validation else sorted(set(range(300)) - set(expected))
                assert list(kept.as_numpy_iterator()) == wanted

    def test_shards_longer_than_a_hashed_block(self, tmp_path):
        """Records of shards of 2,500 and 1,100 (blocks of 1,024 hashed at once), labelled
        by their identity: each split reads exactly the records the NumPy oracle names."""
        lengths = (2500, 1100)
        identity = 0
        for shard, length in enumerate(lengths):
            with tf.io.TFRecordWriter(str(tmp_path / f"train-{shard:05d}-of-00002")) as writer:
                for _ in range(length):
                    writer.write(image_example(b"png", identity).SerializeToString())
                    identity += 1
        with tf.io.TFRecordWriter(str(tmp_path / "test-00000-of-00001")) as writer:
            writer.write(image_example(b"png", 0).SerializeToString())
        info = {"class_names": [str(label) for label in range(identity)]}
        (tmp_path / "dataset_info.json").write_text(json.dumps(info))
        splits = open_streaming_dataset(tmp_path, validation_fraction=0.1, seed=2)
        expected = [
            sum(lengths[:shard]) + record
            for shard, length in enumerate(lengths)
            for record in range(length)
            if held_out_oracle(2, shard, record, 0.1)
        ]
        for split, wanted in (
            (splits.validation, expected),
            (splits.train, sorted(set(range(identity)) - set(expected))),
        ):
            records = _records(splits, split, None, 1, 0, False)
            labels = sorted(int(element["label"]) for element in records.as_numpy_iterator())
            assert labels == wanted and split.num_examples == len(wanted)

    def test_count_is_binomial_and_nested_across_fractions(self):
        lengths = [2500] * 40  # 100,000 records
        for fraction in (0.05, 0.1, 0.3):
            count = count_held_out(lengths, seed=3, fraction=fraction)
            sigma = np.sqrt(100_000 * fraction * (1 - fraction))
            assert abs(count - 100_000 * fraction) < 4 * sigma, (fraction, count)
        small = set(held_out_records(2500, 5, seed=3, fraction=0.05).tolist())
        large = set(held_out_records(2500, 5, seed=3, fraction=0.1).tolist())
        assert small < large
        other_seed = set(held_out_records(2500, 5, seed=4, fraction=0.1).tolist())
        assert other_seed != large


class TestShardValidation:
    def test_prepare_writes_the_records_of_each_shard(self, shards):
        info = json.loads((shards / "dataset_info.json").read_text())
        train = tfrecords.find_shards(shards, "train")
        assert info["shard_lengths"]["train"] == tfrecords.shard_lengths(train) == [12] * 4
        assert info["shard_lengths"]["test"] == [NUM_TEST]

    def test_train_and_validation_partition_the_records_exactly(self, shards):
        splits = open_streaming_dataset(shards, validation_fraction=0.25, seed=0)
        validation, train = read(splits, "validation"), read(splits, "train")
        assert len(validation) == splits.validation.num_examples > 0
        assert len(train) == splits.train.num_examples
        assert splits.train.num_examples + splits.validation.num_examples == NUM_TRAIN
        assert not set(validation) & set(train)
        assert sorted(validation + train) == list(range(NUM_TRAIN))
        # What trains: the training records only, each once an epoch.
        epoch = trained(splits)
        assert sorted(epoch) == sorted(train)
        # The NumPy oracle of which record is held out: record r of shard k is image
        # `order[4 r + k]` of the seeded permutation supcon-prepare dealt round robin.
        order = np.random.default_rng(0).permutation(NUM_TRAIN)
        expected = sorted(
            int(order[4 * record + shard])
            for shard in range(4)
            for record in range(12)
            if held_out_oracle(0, shard, record, 0.25)
        )
        assert sorted(validation) == expected
        assert splits.validation_source == (
            f"25% of the train shards' records, held out by a hash of seed 0: {len(expected)} "
            "records"
        )

    def test_same_records_on_every_open_order_and_pipeline_count(self, shards):
        first = open_streaming_dataset(shards, validation_fraction=0.25, seed=0)
        again = open_streaming_dataset(shards, validation_fraction=0.25, seed=0)
        assert first == again
        validation, train = set(read(first, "validation")), set(read(first, "train"))
        assert set(read(again, "validation")) == validation
        # Other file orders (training seeds) read the same training records.
        assert set(trained(first, seed=0)) == set(trained(first, seed=5)) == train
        # Two input pipelines: each reads its own shards' share, together the same split.
        halves = [
            read(first, "validation", tf.distribute.InputContext(2, index, 2)) for index in (0, 1)
        ]
        assert not set(halves[0]) & set(halves[1])
        assert sorted(halves[0] + halves[1]) == sorted(validation)
        pipelines = [
            set(trained(first, input_context=tf.distribute.InputContext(2, index, 2), batch_size=2))
            for index in (0, 1)
        ]
        assert pipelines[0] | pipelines[1] <= train
        assert not pipelines[0] & pipelines[1]
        other_seed = open_streaming_dataset(shards, validation_fraction=0.25, seed=1)
        assert set(read(other_seed, "validation")) != validation

    def test_shards_without_lengths_are_counted_once(self, shards, tmp_path, caplog):
        listed = open_streaming_dataset(shards, validation_fraction=0.25, seed=0)
        for name in [path.name for path in shards.iterdir()]:
            (tmp_path / name).write_bytes((shards / name).read_bytes())
        info = json.loads((tmp_path / "dataset_info.json").read_text())
        del info["shard_lengths"]
        (tmp_path / "dataset_info.json").write_text(json.dumps(info))
        with caplog.at_level(logging.WARNING):
            counted = open_streaming_dataset(tmp_path, validation_fraction=0.25, seed=0)
        assert "lists no shard_lengths for its 4 train shards" in caplog.text
        assert counted.validation.num_examples == listed.validation.num_examples
        assert sorted(read(counted, "validation")) == sorted(read(listed, "validation"))
        (tmp_path / "dataset_info.json").unlink()  # no info file at all
        bare = open_streaming_dataset(tmp_path, validation_fraction=0.25, seed=0)
        assert bare.validation.num_examples == listed.validation.num_examples

    def test_fraction_zero_and_a_fraction_too_small(self, shards):
        none = open_streaming_dataset(shards, validation_fraction=0, seed=0)
        assert (none.train.num_examples, none.validation.num_examples) == (NUM_TRAIN, 0)
        assert none.validation_source == "none (validation_fraction=0)"
        assert sorted(read(none, "train")) == list(range(NUM_TRAIN))
        with pytest.raises(DataError, match=r"holds out 0 for validation; need at least one"):
            open_streaming_dataset(shards, validation_fraction=0.001, seed=0)


def build_id_tfds(data_dir, counts, unlabelled_test=False):
    """Prepares TFDS dataset `id_test_images` with splits of `counts` records (no download).

    Record `i` of all splits in order (train first) is a PNG whose red level is `4 i + 2`;
    its label is `i % 2`, or -1 in an `unlabelled_test` split (as imagenet2012's test).
    """
    import tensorflow_datasets as tfds

    class IdTestImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")
        code_path = None

        def _info(self):
            features = {
                "image": tfds.features.Image(encoding_format="png"),
                "label": tfds.features.ClassLabel(names=["a", "b"]),
            }
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features)
            )

        def _split_generators(self, dl_manager):
            firsts = np.cumsum([0, *counts.values()])
            return {
                name: self._generate_examples(first, count, name == "test" and unlabelled_test)
                for (name, count), first in zip(counts.items(), firsts, strict=False)
            }

        def _generate_examples(self, first, count, unlabelled):
            for identity in range(first, first + count):
                pixel = np.array([4 * identity + 2, 50, 128], np.uint8)
                yield (
                    int(identity),
                    {
                        "image": np.broadcast_to(pixel, (24, 32, 3)).copy(),
                        "label": -1 if unlabelled else identity % 2,
                    },
                )

    IdTestImages(data_dir=str(data_dir)).download_and_prepare()
    return str(data_dir)


def tfds_identities(data_dir, split):
    """What TFDS itself reads for `split` (a name or a slice such as `train[36:]`)."""
    import tensorflow_datasets as tfds

    dataset = tfds.builder("id_test_images", data_dir=data_dir).as_dataset(
        split=split, shuffle_files=False
    )
    return [int(identities(example["image"].numpy()[None] / 255.0)[0]) for example in dataset]


@pytest.mark.skipif(TFDS_MISSING, reason="tensorflow-datasets is not installed")
class TestTFDSValidation:
    def test_without_validation_the_last_share_of_train_by_tfds_slicing(self, tmp_path):
        data_dir = build_id_tfds(tmp_path, {"train": 40, "test": NUM_TEST})
        splits = open_streaming_dataset("tfds:id_test_images", data_dir, validation_fraction=0.1)
        assert (splits.train.num_examples, splits.validation.num_examples) == (36, 4)
        assert read(splits, "validation") == tfds_identities(data_dir, "train[36:]")
        assert read(splits, "train") == tfds_identities(data_dir, "train[:36]")
        assert sorted(read(splits, "validation") + read(splits, "train")) == list(range(40))
        assert sorted(read(splits, "test")) == list(range(40, 48))
        assert set(trained(splits)) <= set(tfds_identities(data_dir, "train[:36]"))
        assert splits.validation_source == (
            "the last 10% of TFDS split 'train' of tfds:id_test_images (train[36:]): 4 records"
        )
        again = open_streaming_dataset("tfds:id_test_images", data_dir, validation_fraction=0.1)
        assert again == splits
        none = open_streaming_dataset("tfds:id_test_images", data_dir, validation_fraction=0)
        assert (none.train.num_examples, none.validation.num_examples) == (40, 0)

    def test_its_own_validation_and_test_splits_are_used_as_they_are(self, tmp_path):
        data_dir = build_id_tfds(tmp_path, {"train": 20, "validation": 6, "test": 5})
        splits = open_streaming_dataset("tfds:id_test_images", data_dir, validation_fraction=0.1)
        sizes = (splits.train.num_examples, splits.validation.num_examples)
        assert sizes + (splits.test.num_examples,) == (20, 6, 5)
        assert read(splits, "validation") == tfds_identities(data_dir, "validation")
        assert sorted(read(splits, "validation")) == list(range(20, 26))
        assert sorted(read(splits, "test")) == list(range(26, 31))
        assert splits.validation_source == (
            "TFDS split 'validation' of tfds:id_test_images: 6 records"
        )

    @pytest.mark.parametrize(
        ("counts", "unlabelled_test"),
        [
            ({"train": 20, "validation": 6}, False),
            ({"train": 20, "validation": 6, "test": 3}, True),
        ],
    )
    def test_a_validation_split_alone_is_the_test_split(self, tmp_path, counts, unlabelled_test):
        """Without a (labelled) test split, validation is the test split, as for imagenet2012."""
        data_dir = build_id_tfds(tmp_path, counts, unlabelled_test)
        splits = open_streaming_dataset("tfds:id_test_images", data_dir, validation_fraction=0.25)
        assert sorted(read(splits, "test")) == list(range(20, 26))
        assert read(splits, "validation") == tfds_identities(data_dir, "train[15:]")


def test_best_epoch_selection_runs_on_a_shard_source(tmp_path):
    """A tiny run on shards: the classifier is chosen on the held-out records."""
    write_id_folder(str(tmp_path / "images"))
    write_shards(tmp_path / "images", tmp_path / "shards", num_shards=4, progress=False)
    config = tiny_config(
        tmp_path,
        dataset=str(tmp_path / "shards"),
        image_size=16,
        batch_size=8,
        classifier_epochs=3,
    )
    checked = preflight(config)
    assert not any("has no validation split" in note for note in checked.notes)
    report = run_experiment(config)
    dataset = report["dataset"]
    assert (dataset["train"], dataset["validation"]) == (
        checked.inputs.num_train,
        checked.inputs.num_validation,
    )
    assert dataset["train"] + dataset["validation"] == NUM_TRAIN and dataset["validation"] > 0
    assert dataset["validation_source"].startswith("25% of the train shards' records")
    history = report["history"]["classifier"]
    assert len(history["val_loss"]) == 3
    assert report["supcon"]["selected_epoch"] == 1 + int(np.argmin(history["val_loss"]))
    best = json.loads(Path(config.model_dir, "best", "classifier", "best.json").read_text())
    assert best["epoch"] + 1 == report["supcon"]["selected_epoch"]  # 0-based in best.json
    assert report["supcon"]["validation_accuracy"] is not None
