"""Tests of `--help` of `supcon-train` and `supcon-eval` (supcon_tf.cli.usage)."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags

from supcon_tf.cli import evaluate, train
from supcon_tf.cli.flags import define_flags, flag_groups
from supcon_tf.cli.usage import format_grouped_help, grouped_help_parser
from supcon_tf.experiment import ExperimentConfig

ROOT = Path(__file__).resolve().parents[1]
TRAIN_GROUPS = ("data", "model", "loss", "optimisation", "distribution", "evaluation", "output")


def _help_of(define, description, groups, argument="--help"):
    """(exit code, printed text) of the grouped help parser on fresh flag values."""
    flag_values = flags.FlagValues()
    define(flag_values)
    parse = grouped_help_parser(description, groups, flag_values)
    with pytest.raises(SystemExit) as exit_info:
        parse(["command", argument])
    return exit_info.value.code, flag_values


class TestTrainHelp:
    def test_every_flag_is_in_exactly_one_group(self):
        groups = flag_groups()
        assert tuple(groups) == TRAIN_GROUPS
        names = [name for group in groups.values() for name in group]
        fields = [field.name for field in dataclasses.fields(ExperimentConfig)]
        assert sorted(names) == sorted(fields)

    @pytest.mark.parametrize("argument", ["--help", "-h", "-?", "--helpshort"])
    def test_help_lists_groups_flags_and_defaults(self, argument, capsys):
        code, _ = _help_of(define_flags, train.__doc__, flag_groups, argument)
        text = capsys.readouterr().out
        assert code == 0
        for group in TRAIN_GROUPS:
            assert f"\n{group.capitalize()} flags:\n" in text
        assert "  --batch_size: Images per step" in text
        assert "    (default: 64)" in text
        assert "  --[no]baseline: " in text
        assert "--helpfull" in text
        # Groups in order, each flag under its own group.
        assert text.index("Data flags:") < text.index("--dataset:") < text.index("Model flags:")
        assert text.index("Optimisation flags:") < text.index("--batch_size:")

    def test_arguments_after_double_dash_are_not_help(self, capsys):
        flag_values = flags.FlagValues()
        define_flags(flag_values)
        parse = grouped_help_parser("", flag_groups, flag_values)
        remaining = parse(["command", "--batch_size=8", "--", "--help"])
        assert remaining == ["command", "--help"]
        assert flag_values.batch_size == 8
        assert capsys.readouterr().out == ""

    def test_bad_flag_exits_1_and_points_to_help(self, capsys):
        flag_values = flags.FlagValues()
        define_flags(flag_values)
        with pytest.raises(SystemExit) as exit_info:
            grouped_help_parser("", flag_groups, flag_values)(["command", "--views=0"])
        assert exit_info.value.code == 1
        assert "Pass --help or --helpfull" in capsys.readouterr().err


class TestFormat:
    def test_format_of_flags(self):
        flag_values = flags.FlagValues()
        flags.DEFINE_string("name", "digits", "A name.", flag_values=flag_values)
        flags.DEFINE_bool("on", True, "A switch.", flag_values=flag_values)
        flags.DEFINE_integer("unset", None, "Unset.", flag_values=flag_values)
        flags.DEFINE_integer("told", None, "Told (default: all).", flag_values=flag_values)
        text = format_grouped_help(
            flag_values, {"data": ["name"], "model": ["on", "unset", "told"]}, "Does it."
        )
        assert text == (
            "Does it.\n\n"
            "Data flags:\n  --name: A name.\n    (default: digits)\n\n"
            "Model flags:\n  --[no]on: A switch.\n    (default: true)\n"
            "  --unset: Unset.\n    (default: not set)\n"
            "  --told: Told (default: all).\n\n"
            "--helpfull lists these flags together with absl's and TensorFlow's."
        )


def test_eval_help_lists_its_groups(capsys):
    code, flag_values = _help_of(evaluate.define_flags, evaluate.__doc__, evaluate.FLAG_GROUPS)
    text = capsys.readouterr().out
    assert code == 0
    for group in ("Data", "Evaluation", "Output"):
        assert f"\n{group} flags:\n" in text
    assert "  --model_dir: Run folder written by supcon-train" in text
    assert "    (default: 15)" in text  # --num_bins
    names = sorted(name for group in evaluate.FLAG_GROUPS.values() for name in group)
    assert names == sorted(flag_values)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("supcon_tf.train", "--batch_size"),
        # About 20 s of TensorFlow import; test_eval_help_lists_its_groups is its twin.
        pytest.param("supcon_tf.cli.evaluate", "--model_dir", marks=pytest.mark.slow),
    ],
)
def test_commands_print_help_and_exit_0(module, expected):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert expected in completed.stdout
    assert "Output flags:" in completed.stdout and "(default: " in completed.stdout
    assert "Try --helpfull" not in completed.stdout
