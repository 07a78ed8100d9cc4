"""Tests of preflight, fair presets, progress lines and finished runs (supcon_tf.experiment).

Each mistake class is caught before anything is written or trained: the test asserts
the error type, its one sentence (what is wrong; what to do), that it came within
seconds with `model_dir` untouched, and that the corrected run then works in the same
`model_dir`.
"""

import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from supcon_tf.data import write_shards
from supcon_tf.errors import DataError, UsageError
from supcon_tf.experiment import (
    ExperimentConfig,
    apply_preset,
    budget,
    get_preset,
    preflight,
    preset_notes,
    run,
    run_experiment,
)
from supcon_tf.experiment.phases import progress_mode

ROOT = Path(__file__).resolve().parents[1]

# A mistake must be reported within this many seconds (the tiny data here loads in
# well under one; the budget leaves room for a loaded machine).
PREFLIGHT_SECONDS = 15


def write_folder(root, sizes=((12, 12),), per_class=(8, 2), corrupt_first=False):
    """An image folder of two classes; image `i` of a split has size `sizes[i % len]`."""
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), per_class, strict=True):
        for label, name in enumerate(("a", "b")):
            folder = Path(root, split, name)
            folder.mkdir(parents=True)
            for index in range(count):
                height, width = sizes[(index + label) % len(sizes)]
                pixels = rng.integers(0, 60, (height, width, 3)) + 150 * label
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index:02d}.png")
    if corrupt_first:
        Path(root, "train", "a", "00.png").write_bytes(b"not an image at all")
    return Path(root)


def tiny_npz(path, num_train=48):
    rng = np.random.default_rng(0)
    labels = np.arange(num_train + 16) % 2
    images = rng.random((len(labels), 6, 6, 1)).astype("float32") * 0.4
    images[labels == 1, 3:] += 0.6
    np.savez(
        path,
        x_train=images[:num_train],
        y_train=labels[:num_train],
        x_test=images[num_train:],
        y_test=labels[num_train:],
    )
    return str(path)


def tiny_config(tmp_path, **overrides):
    settings = {
        "dataset": tiny_npz(tmp_path / "tiny.npz"),
        "validation_fraction": 0.25,
        "width_multiplier": 0.125,
        "batch_size": 16,
        "pretrain_epochs": 1,
        "classifier_epochs": 1,
        "baseline": False,
        "evaluate": False,
        "knn_monitor": False,
        "model_dir": str(tmp_path / "run"),
        "verbose": 0,
    }
    settings.update(overrides)
    return ExperimentConfig(**settings)


def refused(config, error_type, match):
    """Runs `config`, expecting `error_type` before anything is written; returns the error."""
    start = time.perf_counter()
    with pytest.raises(error_type, match=match) as caught:
        run_experiment(config)
    assert time.perf_counter() - start < PREFLIGHT_SECONDS
    assert not Path(config.model_dir).exists(), "a refused run wrote into model_dir"
    message = str(caught.value)
    assert "\n" not in message and "; " in message, message  # one sentence: what; what to do
    return caught.value


def corrected_run_works(config):
    report = run_experiment(config)
    assert 0.0 <= report["supcon"]["test_accuracy"] <= 1.0
    assert Path(config.model_dir, "config.json").is_file()
    return report


# ----------------------------------------------------------------------------- paths


class TestPaths:
    def test_dataset_typo_lists_the_choices_even_with_image_size(self, tmp_path):
        config = tiny_config(tmp_path, dataset="cifar-10", image_size=32)
        refused(
            config,
            UsageError,
            r"Unknown dataset 'cifar-10' \(did you mean 'cifar10'\?\); use one of digits, cifar10",
        )
        corrected_run_works(tiny_config(tmp_path))

    def test_missing_dataset_path(self, tmp_path):
        config = tiny_config(tmp_path, dataset=str(tmp_path / "nowhere" / "images"))
        error = refused(config, DataError, r"Dataset path .*nowhere/images does not exist; check")
        assert isinstance(error, FileNotFoundError)
        corrected_run_works(tiny_config(tmp_path))

    def test_data_dir_pointing_nowhere_is_an_error_not_a_download(self, tmp_path):
        config = tiny_config(tmp_path, dataset="cifar10", data_dir=str(tmp_path / "no_data"))
        refused(config, DataError, r"--data_dir .*no_data does not exist; fix the path, create")
        (tmp_path / "data").mkdir()
        tiny_npz(tmp_path / "data" / "cifar10.npz")  # a local copy of "cifar10"
        corrected_run_works(
            tiny_config(tmp_path, dataset="cifar10", data_dir=str(tmp_path / "data"))
        )

    def test_class_folders_without_a_train_test_split(self, tmp_path):
        for name in ("cat", "dog"):
            (tmp_path / "photos" / name).mkdir(parents=True)
            (tmp_path / "photos" / name / "1.jpg").write_bytes(b"")
        (tmp_path / "photos" / "notes").mkdir()  # a folder without images is not a class
        config = tiny_config(tmp_path, dataset=str(tmp_path / "photos"))
        refused(
            config,
            DataError,
            r"holds class folders \(cat/, dog/\) but no train/ and test/ split; move them "
            r"under .*photos/train/ and put held-out images of each class under "
            r".*photos/test/<class>/",
        )

    def test_folder_that_is_not_a_dataset(self, tmp_path):
        (tmp_path / "photos").mkdir()
        config = tiny_config(tmp_path, dataset=str(tmp_path / "photos"))
        refused(
            config, DataError, r"holds neither train/<class>/ image folders nor train-\* .*; point"
        )


# ----------------------------------------------------------------------------- data


class TestData:
    def test_mixed_sizes_without_image_size_point_to_image_size(self, tmp_path):
        root = write_folder(tmp_path / "images", sizes=((12, 12), (16, 20)))
        config = tiny_config(tmp_path, dataset=str(root), batch_size=4, encoder="small_cnn")
        refused(config, DataError, r"different sizes .*; set --image_size to stream them")
        corrected_run_works(dataclasses.replace(config, image_size=12))

    def test_unreadable_first_image(self, tmp_path):
        root = write_folder(tmp_path / "images", corrupt_first=True)
        config = tiny_config(tmp_path, dataset=str(root), batch_size=4)
        error = refused(
            config, DataError, r"Cannot read image .*train/a/00\.png .*; replace or remove it"
        )
        # TensorFlow's reason, without its op and function-node decorations.
        assert "function_node" not in str(error) and "[Op:" not in str(error)
        Image.new("RGB", (12, 12)).save(root / "train" / "a" / "00.png")
        corrected_run_works(config)

    def test_image_size_on_an_in_ram_dataset(self, tmp_path):
        config = tiny_config(tmp_path, image_size=32)
        refused(config, UsageError, r"applies to streamed datasets .* Drop --image_size")
        corrected_run_works(tiny_config(tmp_path))

    def test_images_smaller_than_the_encoder_takes(self, tmp_path):
        config = tiny_config(tmp_path, encoder="resnet18")  # 6-pixel images; it needs 8
        refused(config, UsageError, r"are 6 pixels a side, but encoder resnet18 .*; choose")
        corrected_run_works(tiny_config(tmp_path))

    def test_sampling_reads_a_few_images_not_the_folder(self, tmp_path, monkeypatch):
        root = write_folder(tmp_path / "images", per_class=(30, 2))
        reads = []
        preflight_module = sys.modules["supcon_tf.experiment.preflight"]
        original = preflight_module.tf.io.read_file
        monkeypatch.setattr(
            preflight_module.tf.io, "read_file", lambda path: reads.append(path) or original(path)
        )
        preflight_module.sample_images("folder", str(root), mixed_sizes_allowed=False)
        assert 0 < len(reads) <= 2 * preflight_module.SAMPLE_IMAGES

    def test_shards_are_sampled_and_streamed(self, tmp_path):
        root = write_folder(tmp_path / "images")
        write_shards(root, tmp_path / "shards", num_shards=2, progress=False)
        config = tiny_config(tmp_path, dataset=str(tmp_path / "shards"), image_size=12)
        checked = preflight(dataclasses.replace(config, batch_size=4))
        assert checked.inputs.streamed and checked.inputs.num_validation > 0
        assert checked.inputs.num_train + checked.inputs.num_validation == 16  # held out
        assert checked.batch_sizes == {"pretrain": 4, "classifier": 4}

    def test_shards_without_image_size(self, tmp_path):
        root = write_folder(tmp_path / "images")
        write_shards(root, tmp_path / "shards", num_shards=2, progress=False)
        config = tiny_config(tmp_path, dataset=str(tmp_path / "shards"), batch_size=4)
        refused(
            config,
            UsageError,
            r"is streamed as square crops of one side; set `image_size` \(--image_size\)",
        )
        corrected_run_works(dataclasses.replace(config, image_size=12))


# ----------------------------------------------------------------------------- batch sizes


class TestBatchSizes:
    @pytest.mark.parametrize(
        ("overrides", "match"),
        [
            (
                {"batch_size": 64},
                r"The pretrain stage's batch size 64 exceeds the 36 .*; set --batch_size to at most 36",
            ),
            (
                {"classifier_batch_size": 64},
                r"The classifier stage's batch size 64 exceeds .*; set --classifier_batch_size",
            ),
        ],
    )
    def test_each_stage_batch_fits_its_split(self, tmp_path, overrides, match):
        config = tiny_config(tmp_path, **overrides)
        refused(config, DataError, match)
        corrected_run_works(tiny_config(tmp_path))

    def test_preset_classifier_batch_fails_before_pretraining(self, tmp_path, monkeypatch):
        """keras_example_2020 on a small folder: the classifier batch of 256 is named
        before pretraining starts, and says that the preset set it."""
        root = write_folder(tmp_path / "images", sizes=((32, 32),), per_class=(20, 2))
        flags = get_preset("keras_example_2020")["flags"]
        flags.update(
            dataset=str(root),
            batch_size=8,  # given explicitly, but the classifier batch kept at 256
            pretrain_epochs=1,
            classifier_epochs=1,
            baseline_epochs=1,
            model_dir=str(tmp_path / "run"),
            verbose=0,
            evaluate=False,
            preset="keras_example_2020",
        )
        trained = []
        monkeypatch.setattr(run.Stages, "pretrain", lambda self: trained.append(1))
        config = ExperimentConfig(**flags)
        refused(
            config,
            DataError,
            r"classifier stage's batch size 256 \(set by --preset=keras_example_2020\) exceeds the 40",
        )
        assert trained == []
        monkeypatch.undo()
        corrected_run_works(dataclasses.replace(config, classifier_batch_size=8))


# ----------------------------------------------------------------------------- presets


class TestPresetsStayFair:
    def test_overriding_pretrain_epochs_carries_to_the_baseline(self):
        defaults = {"pretrain_epochs": 30, "classifier_epochs": 20, "baseline_epochs": None}
        merged = apply_preset(
            "keras_example_2020", {"pretrain_epochs": 1, "classifier_epochs": 1}, defaults
        )
        assert merged == {"pretrain_epochs": 1, "classifier_epochs": 1, "baseline_epochs": 1}
        # Given explicitly, the tied value is the user's.
        merged = apply_preset(
            "keras_example_2020", {"pretrain_epochs": 1, "baseline_epochs": 7}, defaults
        )
        assert merged["baseline_epochs"] == 7

    def test_overriding_the_batch_carries_to_the_classifier_batch(self):
        defaults = {"batch_size": 64, "classifier_batch_size": None}
        assert apply_preset("keras_example", {"batch_size": 16}, defaults) == {
            "batch_size": 16,
            "classifier_batch_size": 16,
        }

    def test_the_command_line_gets_the_tied_values(self):
        from absl import flags

        from supcon_tf.cli.flags import apply_preset_to_flags, config_from_flags, define_flags

        flag_values = flags.FlagValues()
        define_flags(flag_values)
        flag_values(
            [
                "supcon-train",
                "--preset=keras_example_2020",
                "--pretrain_epochs=1",
                "--classifier_epochs=1",
                "--batch_size=32",
            ]
        )
        apply_preset_to_flags(flag_values)
        config = config_from_flags(flag_values)
        assert (config.baseline_epochs, config.classifier_batch_size) == (1, 32)

    def test_stages_that_keep_the_preset_value_are_named(self):
        flags = get_preset("cifar10_resnet50_supcon")["flags"]
        notes = preset_notes("cifar10_resnet50_supcon", {**flags, "batch_size": 64})
        assert notes == [
            "batch_size=64 overrides the preset's 1024",
            "classifier_batch_size keeps the preset's 512 (batch_size was overridden)",
        ]

    def test_unequal_budgets_are_said_beside_the_numbers(self, tmp_path, caplog):
        config = tiny_config(tmp_path, baseline=True, baseline_epochs=3)
        with caplog.at_level(logging.WARNING):
            report = run_experiment(config)
        note = (
            "Unequal budgets: SupCon trained 2 epochs (1 pretraining + 1 classifier), "
            "cross-entropy 3 epochs; the accuracies are not a like-for-like comparison."
        )
        assert report["budget"]["note"] == note and report["budget"]["equal"] is False
        saved = json.loads(Path(config.model_dir, "report.json").read_text())
        assert saved["budget"]["note"] == note
        assert sum(note in record.getMessage() for record in caplog.records) >= 1

    def test_equal_budgets_have_no_note(self):
        arms = budget(ExperimentConfig(pretrain_epochs=4, classifier_epochs=2))
        assert arms["equal"] and arms["note"] is None and arms["cross_entropy_epochs"] == 6
        assert budget(ExperimentConfig(baseline=False)) is None


# ----------------------------------------------------------------------------- progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize(
    ("verbose", "stream", "expected"),
    [(1, io.StringIO(), 2), (1, _Terminal(), 1), (2, _Terminal(), 2), (0, io.StringIO(), 0)],
)
def test_progress_bars_only_on_a_terminal(verbose, stream, expected):
    assert progress_mode(verbose, stream) == expected


# ----------------------------------------------------------------------------- finished runs


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    config = tiny_config(root, evaluate=True)
    return config, run_experiment(config)


def test_a_finished_run_says_so_and_does_not_reevaluate(finished, monkeypatch, caplog):
    config, first = finished

    def fail(*args, **kwargs):
        raise AssertionError("a finished run was evaluated or trained again")

    monkeypatch.setattr(run, "evaluate_run", fail)
    monkeypatch.setattr(run, "preflight", fail)
    with caplog.at_level(logging.WARNING):
        again = run_experiment(config)
    path = os.path.join(config.model_dir, "report.json")
    assert f"Already complete: report at {path}" in caplog.text
    assert again["supcon"] == json.loads(json.dumps(first["supcon"]))
    assert again["evaluation"] == json.loads(json.dumps(first["evaluation"]))


def test_reevaluate_evaluates_again(finished, monkeypatch):
    config, _ = finished
    calls = []
    monkeypatch.setattr(run, "evaluate_run", lambda *a, **k: calls.append(a[0]) or {"again": 1})
    report = run_experiment(dataclasses.replace(config, reevaluate=True))
    assert calls == [config.model_dir] and report["evaluation"] == {"again": 1}


def test_dry_run_writes_nothing(tmp_path):
    config = tiny_config(tmp_path, dry_run=True, baseline=True)
    summary = run_experiment(config)
    assert summary["dry_run"] and summary["dataset"]["train"] == 36
    assert summary["batch_sizes"] == {"pretrain": 16, "classifier": 16, "baseline": 16}
    assert not Path(config.model_dir).exists()


# ----------------------------------------------------------------------------- command line


def _train(*arguments):
    return subprocess.run(
        [sys.executable, "-m", "supcon_tf.train", *arguments],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_command_line_failed_preflight_leaves_nothing(tmp_path):
    """The command refused by preflight writes no flags.json; `--dry_run` writes nothing."""
    model_dir = tmp_path / "run"
    failed = _train("--dataset=digitz", f"--model_dir={model_dir}")
    assert failed.returncode != 0 and "Unknown dataset 'digitz'" in failed.stderr
    assert not model_dir.exists()
    # A mistake preflight finds in the data: the one error line, no settings summary before it.
    too_big = _train("--dataset=digits", "--batch_size=4096", f"--model_dir={model_dir}")
    assert too_big.returncode == 1 and "exceeds the 1293 training images" in too_big.stderr
    assert "Settings (source:" not in too_big.stderr + too_big.stdout, too_big.stderr
    assert not model_dir.exists()
    dry = _train("--dataset=digits", "--dry_run", f"--model_dir={model_dir}")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Dry run: the checks passed" in dry.stdout and not model_dir.exists()
    # Once preflight passed, the summary is stated.
    assert "Settings (source: flag = command line, preset, default):" in dry.stderr, dry.stderr


@pytest.mark.slow
def test_command_line_corrected_command_runs_in_the_same_folder(tmp_path):
    model_dir = tmp_path / "run"
    arguments = [
        "--preset=keras_example_2020",
        "--dataset=digits",
        "--encoder=small_cnn",
        "--width_multiplier=0.25",
        "--pretrain_epochs=1",
        "--classifier_epochs=1",
        "--noevaluate",
        f"--model_dir={model_dir}",
    ]
    failed = _train(*arguments, "--batch_size=4096")
    assert failed.returncode != 0 and "exceeds the 1437 training images" in failed.stderr
    assert not model_dir.exists()
    result = _train(*arguments, "--batch_size=64")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((model_dir / "report.json").read_text())
    assert report["config"]["baseline_epochs"] == 1  # tied to --pretrain_epochs
    assert report["config"]["classifier_batch_size"] == 64  # tied to --batch_size
    assert (model_dir / "flags.json").is_file()
    assert "Unequal budgets" in result.stdout  # 1 + 1 epochs against 1
