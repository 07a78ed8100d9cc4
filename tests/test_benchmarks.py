"""The benchmark scripts run (slow, opt-in) and meet the issue's targets (benchmark, opt-in).

python -m pytest -m slow tests/test_benchmarks.py        # the scripts work
python -m pytest -m benchmark tests/test_benchmarks.py   # the targets (minutes)
"""

import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(*arguments):
    result = subprocess.run(
        [sys.executable, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def table_rows(output):
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in output.splitlines()
        if line.startswith("| ") and not line.startswith("| batch")
    ]


@pytest.mark.slow
def test_loss_script_prints_all_implementations():
    output = run_script(
        "benchmarks/loss.py", "--sizes", "64x2", "--rounds", "1", "--repeats", "1", "--no-append"
    )
    implementations = [row[1] for row in table_rows(output)]
    assert implementations == ["baseline", "dense", "blocked", "auto", "matmul GFLOP/s"]


@pytest.mark.slow
def test_train_step_script_prints_three_steps():
    output = run_script(
        "benchmarks/train_step.py",
        "--batch",
        "16",
        "--width",
        "0.25",
        "--steps",
        "1",
        "--rounds",
        "1",
        "--no-append",
    )
    names = [line.split("|")[1].strip() for line in output.splitlines() if line.startswith("| ")]
    assert names[1:] == [
        "cross-entropy, batch B",
        "cross-entropy, batch 2B",
        "SupCon, batch B x 2 views",
    ]


@pytest.mark.slow
def test_train_loop_script_times_both_sides(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("test", 2)):
        for label in range(10):
            folder = tmp_path / split / f"class_{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    output = run_script(
        "benchmarks/train_loop.py",
        f"--data_dir={tmp_path}",
        "--epochs=1",
        "--rounds=1",
        "--batch_size=8",
        "--no-append",
    )
    rows = {row[0]: row for row in table_rows(output) if not row[0].startswith("---")}
    assert {"plain Keras script", "supcon-train (cross-entropy arm)"} <= set(rows)
    assert "supcon-train / plain, per round" in output


@pytest.mark.benchmark
def test_blocked_8192_by_2_views_under_1_5_gb():
    from benchmarks.common import run_child

    report = run_child(
        ["benchmarks/loss.py", "--worker", "blocked", "8192", "2", "128", "--repeats", "1"]
    )
    assert report["peak_rss_mb"] < 1536, report


@pytest.mark.benchmark
def test_4096_by_2_views_faster_than_plain_dense():
    from benchmarks.common import run_child

    times = {"baseline": [], "auto": []}
    for _ in range(3):  # interleaved rounds: the machine may be shared
        for implementation, values in times.items():
            command = ["benchmarks/loss.py", "--worker", implementation, "4096", "2", "128"]
            values += run_child([*command, "--repeats", "3"])["times"]
    medians = {name: statistics.median(values) for name, values in times.items()}
    assert medians["baseline"] / medians["auto"] >= 1.25, medians


@pytest.mark.slow
def test_loss_script_in_process_ratios_and_memory_settings():
    output = run_script(
        "benchmarks/loss.py", "--in-process", "--sizes", "64x2", "--rounds", "1", "--no-append"
    )
    (row,) = table_rows(output)
    assert all("x floor" in cell for cell in row[1:-1]) and "(" in row[2], row
    output = run_script("benchmarks/loss.py", "--memory", "--sizes", "64x2", "--no-append")
    settings = [row[1] for row in table_rows(output)]
    assert settings == ["function", "eager", "fit", "mirrored"]


@pytest.mark.benchmark
@pytest.mark.parametrize(
    "mode,batch,limit_mb",
    [("fit", 8192, 1000), ("function", 8192, 1000), ("eager", 8192, 1200), ("fit", 16384, 1500)],
)
def test_peak_memory_targets(mode, batch, limit_mb):
    from benchmarks.common import run_child

    report = run_child(["benchmarks/loss.py", "--memory-worker", mode, str(batch), "2", "128"])
    assert report["peak_rss_mb"] <= limit_mb, report


@pytest.mark.benchmark
def test_gathered_loss_memory_close_to_single_device():
    from benchmarks.common import run_child

    single, mirrored = (
        run_child(["benchmarks/loss.py", "--memory-worker", mode, "8192", "2", "128"])
        for mode in ("fit", "mirrored")
    )
    assert mirrored["peak_rss_mb"] <= 1.5 * single["peak_rss_mb"], (single, mirrored)


class TestStudyScripts:
    """The pure parts of the classifier-stage and CIFAR-10 study scripts (default suite)."""

    def test_classifier_stage_overrides_are_typed_like_the_config(self):
        from benchmarks.classifier_stage import parse_overrides

        overrides = parse_overrides(
            ["dataset=/tmp/x", "baseline=false", "pretrain_epochs=15", "temperature=0.2"]
        )
        assert overrides == {
            "dataset": "/tmp/x",
            "baseline": False,
            "pretrain_epochs": 15,
            "temperature": 0.2,
        }
        with pytest.raises(ValueError, match="no ExperimentConfig field 'epochs'"):
            parse_overrides(["epochs=3"])

    def test_class_disjoint_table_gives_each_arm_its_mean_and_spread(self, monkeypatch):
        from benchmarks import class_disjoint

        def report(seed, offset):
            def figures(value):
                keys = [key for _, key in class_disjoint.METRICS]
                return {key: value + seed / 10 for key in keys}

            return {
                "retrieval": {
                    "models": {"supcon": figures(offset), "cross_entropy": figures(0.1)},
                    "linear_probe": {
                        "supcon": {"test_accuracy": offset + 0.5 + seed / 10},
                        "cross_entropy": {"test_accuracy": 0.6 + seed / 10},
                    },
                }
            }

        reports = {
            (method, seed): report(seed, {"supcon": 0.3, "simclr": 0.2}[method])
            for method in class_disjoint.METHODS
            for seed in (0, 1)
        }
        rows = {row[0]: row for row in class_disjoint.summarize(reports)}
        # Two seeds, 0.1 apart: mean + 0.05, sample standard deviation 0.0707.
        assert rows["SupCon"] == ["SupCon", "2", *["0.350 ± 0.071"] * 4, "0.850 ± 0.071"]
        assert rows["SimCLR"][2] == "0.250 ± 0.071" and rows["SimCLR"][-1] == "0.750 ± 0.071"
        assert rows["cross-entropy"][2:] == [*["0.150 ± 0.071"] * 4, "0.650 ± 0.071"]

    def test_classifier_stage_table_gives_mean_and_range(self):
        from benchmarks.classifier_stage import table

        rows = [
            {"candidate": "a", "validation_accuracy": value, "validation_ece": 0.1, "seconds": 2.0}
            | {"selected_epoch": epoch, "seed": seed}
            for seed, (value, epoch) in enumerate([(0.9, 3), (0.8, 5)])
        ]
        assert "| a | 0.8500 (0.8000-0.9000) | 0.1000 (0.1000-0.1000) | 3, 5 |" in table(rows)

    def test_linear_stage_table_gives_each_arms_accuracies_and_costs(self):
        from benchmarks.linear_stage import ARMS, table

        rows = [
            {"arm": arm, "seed": seed, "test_accuracy": 0.5 + 0.1 * seed, "selected_epoch": 3}
            | {"validation_accuracy": 0.4, "fixed_seconds": 10.0 - index, "seconds_per_epoch": 2.0}
            for index, arm in enumerate(ARMS)
            for seed in (0, 1)
        ]
        lines = table(rows).splitlines()
        assert (
            lines[2]
            == "| frozen features | 0.5000, 0.6000 | 0.5500 | 0.4000 | 3, 3 | 10.0 | 2.00 |"
        )
        assert lines[3].startswith("| image path (before) | 0.5000, 0.6000 |")
        assert lines[3].endswith("| 9.0 | 2.00 |")

    def test_budget_study_chooses_the_recipe_on_validation(self, monkeypatch, tmp_path):
        from benchmarks import cifar10_studies

        calls, views_of_run = [], {}
        # Each phase costs a fixed time (building, tracing) plus its epochs.
        fixed = {"pretrain": 3.0, "classifier": 1.0, "baseline": 5.0}

        def per_epoch(phase, views):
            return {"pretrain": 10.0 * int(views), "classifier": 2.0, "baseline": 4.0}[phase]

        def fake_train(model_dir, preset, data_dir, seed, extra=()):
            flags = dict(flag.lstrip("-").partition("=")[::2] for flag in extra)
            calls.append((preset, seed, flags))
            views = views_of_run[model_dir] = flags.get("views", "2")
            accuracy = {"1": 0.4, "2": 0.5}[views] if preset == "cifar10_cpu_budget" else 0.3
            epochs = {name: int(flags.get(name, 0)) for name in cifar10_studies.EPOCH_FLAGS}

            def seconds(phase):
                return fixed[phase] + per_epoch(phase, views) * epochs[f"{phase}_epochs"]

            report = {
                "config": epochs,
                "timings": {
                    "pretrain_seconds": seconds("pretrain"),
                    "classifier_seconds": seconds("classifier"),
                },
                "supcon": {"test_accuracy": accuracy + 0.01, "validation_accuracy": accuracy},
            }
            if "nobaseline" not in flags:
                report["timings"]["baseline_seconds"] = seconds("baseline")
                report["cross_entropy"] = {"test_accuracy": 0.45, "validation_accuracy": 0.44}
            return report

        def fake_epoch_end_times(model_dir, phase):
            step = per_epoch(phase, views_of_run[model_dir])
            return [fixed[phase] + k * step for k in (1, 2, 3)]

        monkeypatch.setattr(cifar10_studies, "train", fake_train)
        monkeypatch.setattr(cifar10_studies, "epoch_end_times", fake_epoch_end_times)
        rows = cifar10_studies.run_study(
            "budget", "data", [0, 1], tmp_path, minutes=1, candidates=["--views=1", "--views=2"]
        )
        runs = [(preset, seed, flags.get("views")) for preset, seed, flags in calls]
        classifier_epochs = cifar10_studies.get_preset("cifar10_cpu_budget")["flags"][
            "classifier_epochs"
        ]
        # A timing run per candidate, both candidates at seed 0, the winner (2 views) at
        # seed 1, then 2020.
        assert [run for run in runs if run[0] == "cifar10_cpu_budget"] == [
            ("cifar10_cpu_budget", 0, "1"),
            ("cifar10_cpu_budget", 0, "2"),
            ("cifar10_cpu_budget", 0, "1"),
            ("cifar10_cpu_budget", 0, "2"),
            ("cifar10_cpu_budget", 1, "2"),
        ]
        winner = calls[4][2]
        # 2 views: 3 s once and 20 s per pretraining epoch; the classifier's 1 s once and
        # its epochs are paid first. The baseline: 5 s once, 4 s per epoch.
        assert int(winner["pretrain_epochs"]) == (60 - 3 - 1 - 2 * classifier_epochs) // 20
        assert int(winner["baseline_epochs"]) == (60 - 5) // 4
        arms = [row["arm"] for row in rows]
        assert arms.count("budget recipe --views=2, 1 min SupCon") == 2
        assert arms.count("budget recipe, 1 min, cross-entropy") == 2
        assert arms.count("2020 protocol, 1 min SupCon") == 2
        assert "| 2020 protocol, 1 min SupCon | 2 | 0.3100 (0.3100-0.3100)" in (
            cifar10_studies.table(rows)
        )

    def test_budget_epochs_fit_the_budget(self):
        from benchmarks.cifar10_studies import budget_epochs

        costs = {"pretrain": (20.0, 30.0), "classifier": (10.0, 6.0), "baseline": (15.0, 25.0)}
        epochs = budget_epochs(costs, 1200, classifier_epochs=10)
        assert epochs == {"pretrain_epochs": 37, "classifier_epochs": 10, "baseline_epochs": 47}
        assert 30 + 37 * 30 + 10 * 6 <= 1200 < 30 + 38 * 30 + 10 * 6
        assert 15 + 47 * 25 <= 1200 < 15 + 48 * 25
        even = budget_epochs(costs, 1200)  # the 2020 protocol: as many of each
        assert even["pretrain_epochs"] == even["classifier_epochs"] == 32  # 30 + 32 * 36 <= 1200
        assert budget_epochs(costs, 1)["pretrain_epochs"] == 1  # never below one epoch

    def test_phase_costs_separate_the_fixed_time_from_the_epochs(self, monkeypatch, tmp_path):
        from benchmarks import cifar10_studies

        # Each phase: a fixed cost once, then epochs of a constant length.
        fixed = {"pretrain": 7.0, "classifier": 2.5, "baseline": 9.0}
        per_epoch = {"pretrain": 30.0, "classifier": 4.0, "baseline": 20.0}

        def fake_train(model_dir, preset, data_dir, seed, extra=()):
            flags = dict(flag.lstrip("-").partition("=")[::2] for flag in extra)
            epochs = {name: int(flags[name]) for name in cifar10_studies.EPOCH_FLAGS}
            assert set(epochs.values()) == {3}
            return {
                "timings": {
                    f"{phase}_seconds": fixed[phase] + 3 * per_epoch[phase] for phase in fixed
                }
            }

        def fake_epoch_end_times(model_dir, phase):
            return [1000.0 + fixed[phase] + k * per_epoch[phase] for k in (1, 2, 3)]

        monkeypatch.setattr(cifar10_studies, "train", fake_train)
        monkeypatch.setattr(cifar10_studies, "epoch_end_times", fake_epoch_end_times)
        costs = cifar10_studies.phase_costs(tmp_path, "preset", "data")
        assert costs == {phase: (fixed[phase], per_epoch[phase]) for phase in fixed}
        without = cifar10_studies.phase_costs(tmp_path, "preset", "data", baseline=False)
        assert set(without) == {"pretrain", "classifier"}

    def test_epoch_end_times_read_a_real_tensorboard_log(self, tmp_path):
        import keras

        from benchmarks.cifar10_studies import epoch_end_times

        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        board = keras.callbacks.TensorBoard(str(tmp_path / "logs" / "pretrain"))
        x = np.zeros((8, 2), "float32")
        model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[board])
        times = epoch_end_times(tmp_path, "pretrain")
        assert len(times) == 3 and times == sorted(times)


@pytest.mark.slow
def test_input_pipeline_script_prints_the_three_pipelines():
    output = run_script(
        "benchmarks/input_pipeline.py",
        "--images=40",
        "--image_size=32",
        "--batch_size=8",
        "--rounds=1",
        "--seconds=0",
        "--warmup=1",
        "--no-append",
    )
    rows = [row for row in table_rows(output) if row[0] != "pipeline"]
    assert [row[0] for row in rows] == ["reference", "device placement", "pipeline placement"]
    assert rows[0][3] == "1.00x" and all(float(row[1].split()[0]) > 0 for row in rows)


class TestLossCrossover:
    """The crossover lines of `benchmarks/loss.py --in-process` (default suite)."""

    def test_names_the_faster_kernel_per_size_and_auto_against_it(self):
        from benchmarks.loss import crossover_lines

        summaries = [
            ("1024 x 2", 2048, {"dense": [1.0, 1.0, 1.0], "blocked": [2.0, 2.0, 2.0]}),
            (
                "8192 x 2",
                16384,
                {"dense": [3.0, 3.0, 3.0], "blocked": [2.0, 2.0, 2.0], "auto": [2.2, 2.2, 2.2]},
            ),
        ]
        crossover, auto = crossover_lines(summaries)
        assert crossover == (
            "crossover: dense faster at 1024 x 2; blocked faster at 8192 x 2 "
            "(blocked / dense: 1024 x 2 2.00x, 8192 x 2 0.67x)"
        )
        # The default budget keeps N = 2048 dense and streams N = 16384 in blocks.
        assert auto.endswith("1024 x 2 dense, 8192 x 2 blocked 1.10x"), auto

    def test_without_both_kernels_there_is_no_crossover(self):
        from benchmarks.loss import crossover_lines

        assert crossover_lines([("64 x 2", 128, {"dense": [1.0]})]) == []
