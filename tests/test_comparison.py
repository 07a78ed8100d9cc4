"""supcon-compare: the grid, the claims' arithmetic, and a smoke comparison end to end."""

import json
import math

import numpy as np
import pytest

from supcon_tf.comparison import (
    StabilityGrid,
    accuracy_claim,
    robustness_claim,
    select_recipes,
    stability_claim,
)
from supcon_tf.comparison.grid import AXES
from supcon_tf.comparison.protocol import check_config
from supcon_tf.errors import UsageError
from supcon_tf.experiment import ExperimentConfig
from tests._processes import run_module


def _record(method, point, seed, validation, test):
    return {
        "method": method,
        "point": point,
        "seed": seed,
        "validation_accuracy": validation,
        "test_accuracy": test,
    }


class TestGrid:
    def test_star_varies_one_axis_at_a_time_around_the_middle_values(self):
        grid = StabilityGrid()
        centre = grid.centre_point()
        assert (centre.optimizer, centre.learning_rate_factor, centre.augment) == (
            "adam",
            1.0,
            "simple",
        )
        points = grid.points()
        assert len(points) == 7
        for point in points:
            assert sum(point.axis_value(a) != centre.axis_value(a) for a in AXES) <= 1
        for axis in AXES:
            assert {point.axis_value(axis) for point in points} == set(grid.axis_values(axis))

    def test_full_design_is_the_product_with_rates_a_factor_of_the_centre(self):
        grid = StabilityGrid(design="full")
        points = grid.points()
        assert len(points) == 27
        rates = {(p.optimizer, p.learning_rate_factor): p.learning_rate for p in points}
        assert rates[("sgd", 0.1)] == pytest.approx(0.01)
        assert rates[("lars", 10.0)] == pytest.approx(4.0)
        assert rates[("adam", 1.0)] == pytest.approx(1e-3)
        assert len({p.name for p in points}) == 27

    def test_centre_rates_can_be_overridden(self):
        grid = StabilityGrid(
            optimizers=("adam",), centre_learning_rates={"adam": 3e-4}, design="full"
        )
        assert [p.learning_rate for p in grid.points()[::3]] == pytest.approx([3e-5, 3e-4, 3e-3])

    @pytest.mark.parametrize(
        "options, message",
        [
            ({"optimizers": ("sgd", "adagrad")}, "optimizers"),
            ({"augmentations": ("none", "none")}, "twice"),
            ({"augmentations": ()}, "non-empty"),
            ({"learning_rate_factors": (1.0, 0.0)}, "learning_rate_factors"),
            ({"centre_learning_rates": {"adam": -1.0}}, "centre_learning_rates"),
            ({"design": "random"}, "design"),
        ],
    )
    def test_bad_grids_are_refused(self, options, message):
        with pytest.raises(UsageError, match=message):
            StabilityGrid(**options)

    @pytest.mark.parametrize(
        "options, message",
        [({"method": "hybrid"}, "hybrid"), ({"split": "class_disjoint"}, "split")],
    )
    def test_configurations_the_comparison_cannot_run_are_refused(self, options, message):
        with pytest.raises(UsageError, match=message):
            check_config(ExperimentConfig(**options))


class TestClaims:
    def test_recipes_are_chosen_on_mean_validation_accuracy_not_test(self):
        records = [
            _record("supcon", "a", 0, 0.50, 0.90),
            _record("supcon", "a", 1, 0.70, 0.90),  # mean validation 0.60
            _record("supcon", "b", 0, 0.62, 0.10),
            _record("supcon", "b", 1, 0.62, 0.10),  # mean validation 0.62: chosen
            _record("cross_entropy", "a", 0, 0.4, 0.4),
            _record("cross_entropy", "b", 0, 0.4, 0.9),  # a tie goes to the first point
        ]
        assert select_recipes(records) == {"supcon": "b", "cross_entropy": "a"}

    def test_accuracy_claim_is_the_mean_and_sample_std_over_seeds(self):
        top1 = {"supcon": [0.70, 0.74, 0.75], "cross_entropy": [0.71, 0.70, 0.72]}
        ece = {"supcon": [0.05, 0.07, 0.03], "cross_entropy": [0.10, 0.12, 0.08]}
        evaluations = {
            seed: {
                "classifiers": {
                    method: {
                        "top1_accuracy": top1[method][seed],
                        "expected_calibration_error": ece[method][seed],
                    }
                    for method in top1
                }
            }
            for seed in range(3)
        }
        claim = accuracy_claim(evaluations, {"supcon": "b", "cross_entropy": "a"})
        supcon = claim["methods"]["supcon"]
        assert supcon["recipe"] == "b"
        assert supcon["top1_accuracy"]["mean"] == pytest.approx(0.73, abs=1e-12)
        # Sample std of 0.70, 0.74, 0.75: deviations -0.03, 0.01, 0.02 -> sqrt(0.0014 / 2).
        assert supcon["top1_accuracy"]["std"] == pytest.approx(math.sqrt(0.0007), abs=1e-12)
        assert claim["methods"]["cross_entropy"]["expected_calibration_error"]["mean"] == (
            pytest.approx(0.10, abs=1e-12)
        )
        # Paired differences -0.01, 0.04, 0.03.
        assert claim["difference"]["values"] == pytest.approx([-0.01, 0.04, 0.03], abs=1e-12)
        assert claim["difference"]["mean"] == pytest.approx(0.02, abs=1e-12)

    def test_robustness_claim_averages_each_severity_over_seeds(self):
        def result(supcon_per_severity, supcon_mce):
            model = {
                "clean": {"accuracy": 0.8, "expected_calibration_error": 0.1},
                "per_severity": {
                    "accuracy": supcon_per_severity,
                    "expected_calibration_error": [0.1, 0.2],
                },
                "mean_accuracy": float(np.mean(supcon_per_severity)),
                "mean_corruption_error": supcon_mce,
                "relative_mean_corruption_error": 2 * supcon_mce,
            }
            return {
                "corruptions": {
                    "corruptions": ["fog"],
                    "severities": [1, 2],
                    "num_samples": 10,
                    "baseline": "cross_entropy",
                    "models": {"supcon": model},
                }
            }

        claim = robustness_claim({0: result([0.6, 0.4], 0.9), 1: result([0.8, 0.2], 0.7)})
        supcon = claim["methods"]["supcon"]
        assert [s["mean"] for s in supcon["per_severity"]["accuracy"]] == pytest.approx(
            [0.7, 0.3], abs=1e-12
        )
        assert supcon["mean_corruption_error"]["mean"] == pytest.approx(0.8, abs=1e-12)
        assert supcon["relative_mean_corruption_error"]["values"] == pytest.approx([1.8, 1.4])
        assert supcon["mean_corrupted_accuracy"]["mean"] == pytest.approx(0.5, abs=1e-12)
        assert claim["severities"] == [1, 2]

    def test_stability_claim_spread_and_one_axis_at_a_time(self):
        grid = StabilityGrid(
            optimizers=("sgd", "adam"),
            learning_rate_factors=(1.0, 10.0),
            augmentations=("none",),
            design="full",
        )
        points = grid.points()
        accuracies = dict(zip([p.name for p in points], [0.5, 0.6, 0.9, 0.7], strict=True))
        records = [_record("supcon", name, 0, 0.0, value) for name, value in accuracies.items()]
        recipe = points[2].name  # adam, factor 1
        claim = stability_claim(records, points, {"supcon": recipe})["methods"]["supcon"]
        values = np.array([0.5, 0.6, 0.9, 0.7])
        assert claim["spread"]["std"] == pytest.approx(values.std(ddof=1), abs=1e-12)
        assert claim["spread"]["range"] == pytest.approx(0.4, abs=1e-12)
        # Along the optimizer axis (factor 1): sgd 0.5, adam 0.9.
        assert claim["axes"]["optimizer"]["accuracies"] == {"sgd": 0.5, "adam": 0.9}
        assert claim["axes"]["optimizer"]["range"] == pytest.approx(0.4, abs=1e-12)
        # Along the learning rate (adam): 0.9, 0.7.
        assert claim["axes"]["learning_rate_factor"]["accuracies"] == {"1.0": 0.9, "10.0": 0.7}
        assert claim["axes"]["augment"] == {"accuracies": {"none": 0.9}, "std": 0.0, "range": 0.0}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    result = run_module("supcon_tf.cli.compare", ["--smoke", f"--model_dir={folder}"])
    return folder, result


class TestSmokeComparison:
    def test_writes_the_three_tables_figures_and_records(self, smoke_run):
        folder, result = smoke_run
        tables = (folder / "claims.md").read_text()
        for title in ("### Accuracy", "### Corruption robustness", "### Hyperparameter stability"):
            assert title in tables and title in result.stdout
        for name in ("accuracy", "robustness", "stability"):
            assert (folder / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"

    def test_claims_follow_from_the_runs(self, smoke_run):
        folder, _ = smoke_run
        claims = json.loads((folder / "claims.json").read_text())
        runs = claims["runs"]
        assert {(r["method"], r["point"]) for r in runs} == {
            (method, point)
            for method in ("supcon", "cross_entropy")
            for point in ("adam_lr0.001_none", "sgd_lr0.1_none")
        }
        for method in ("supcon", "cross_entropy"):
            mine = [r for r in runs if r["method"] == method]
            best = max(mine, key=lambda r: r["validation_accuracy"])["point"]
            assert claims["accuracy"]["methods"][method]["recipe"] == best
            tests = np.array([r["test_accuracy"] for r in mine])
            spread = claims["stability"]["methods"][method]["spread"]
            assert spread["std"] == pytest.approx(tests.std(ddof=1), abs=1e-12)
            assert spread["range"] == pytest.approx(np.ptp(tests), abs=1e-12)
        assert claims["accuracy"]["seeds"] == [0, 1]
        # Each seed's accuracy is that seed's evaluation of the two classifiers together.
        for seed in (0, 1):
            stored = json.loads((folder / "final" / f"seed_{seed}" / "report.json").read_text())
            for method in ("supcon", "cross_entropy"):
                assert (
                    claims["accuracy"]["methods"][method]["top1_accuracy"]["values"][seed]
                    == (stored["evaluation"]["classifiers"][method]["top1_accuracy"])
                )
        robustness = claims["robustness"]
        assert len(robustness["corruptions"]) == 15 and robustness["severities"] == [1, 2, 3, 4, 5]
        baseline = robustness["methods"]["cross_entropy"]["mean_corruption_error"]
        assert baseline["values"] == [1.0, 1.0]


class TestResume:
    def test_a_stored_evaluation_of_the_same_recipes_is_read_back_not_redone(self, tmp_path):
        from supcon_tf.comparison import protocol

        folder = tmp_path / "final" / "seed_0"
        folder.mkdir(parents=True)
        selected = {"supcon": "a", "cross_entropy": "b"}
        stored = {"classifiers": {"supcon": {"top1_accuracy": 0.5}}}
        (folder / "report.json").write_text(
            json.dumps({"recipes": selected, "seed": 0, "evaluation": stored})
        )
        # A dataset that does not exist: anything but reading the stored result fails.
        config = ExperimentConfig(dataset=str(tmp_path / "missing"), model_dir=str(tmp_path))
        settings = protocol.Protocol(
            seeds=(0,), grid_seeds=(0,), corruption_samples=10, corruptions=None
        )
        assert protocol._evaluate_seed(config, settings, 0, {}, selected, []) == stored
        # Other recipes: the stored evaluation is not theirs.
        with pytest.raises(KeyError):
            protocol._evaluate_seed(config, settings, 0, {}, {"supcon": "c"}, [])
