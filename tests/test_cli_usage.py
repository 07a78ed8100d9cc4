"""Tests of `--help` of every command (supcon_tf.cli.usage) and of their flag names."""

import dataclasses

import pytest
from absl import flags

from supcon_tf.cli import augment_preview, evaluate, prepare, train
from supcon_tf.cli.flags import define_flags, flag_groups
from supcon_tf.cli.usage import format_grouped_help, grouped_help_parser
from supcon_tf.experiment import ExperimentConfig
from tests._processes import run_as_user
from tests.test_cli_errors import CPP_LOG_LINE, NOISE

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

    def test_helpfull_lists_every_flag_and_exits_0(self, capsys):
        code, _ = _help_of(define_flags, train.__doc__, flag_groups, "--helpfull")
        text = capsys.readouterr().out
        assert code == 0 and text.startswith("`supcon-train`: SupCon pretraining")
        assert "--batch_size: Images per step" in text

    def test_arguments_after_double_dash_are_not_help(self, capsys):
        flag_values = flags.FlagValues()
        define_flags(flag_values)
        parse = grouped_help_parser("", flag_groups, flag_values)
        remaining = parse(["command", "--batch_size=8", "--", "--help"])
        assert remaining == ["command", "--help"]
        assert flag_values.batch_size == 8
        assert capsys.readouterr().out == ""

    def test_bad_flag_is_left_to_the_command(self, capsys):
        flag_values = flags.FlagValues()
        define_flags(flag_values)
        with pytest.raises(flags.IllegalFlagValueError, match="--views"):
            grouped_help_parser("", flag_groups, flag_values)(["command", "--views=0"])
        assert capsys.readouterr().err == ""  # supcon_tf.cli.console prints the one line.


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
    ("command", "define"),
    [(prepare, prepare.define_flags), (augment_preview, augment_preview.define_flags)],
)
def test_every_flag_of_the_small_commands_is_in_a_group(command, define):
    flag_values = flags.FlagValues()
    define(flag_values)
    names = sorted(name for group in command.FLAG_GROUPS.values() for name in group)
    assert names == sorted(flag_values)


def test_one_name_per_idea_across_commands():
    """A flag that two commands share means the same; the trainer's names win."""
    trainer = flags.FlagValues()
    define_flags(trainer)
    preview = flags.FlagValues()
    augment_preview.define_flags(preview)
    assert {"augment", "augment_magnitude", "augment_strength", "crop_min_area"} <= set(preview)
    assert not {"magnitude", "strength", "min_crop_area"} & set(preview)
    for name in ("augment", "augment_magnitude", "augment_strength", "crop_min_area"):
        assert name in trainer, name


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("supcon_tf.train", ("`supcon-train`", "--batch_size:", "--crop_min_area:")),
        ("supcon_tf.cli.evaluate", ("`supcon-eval`", "--model_dir:", "--knn_k:")),
        ("supcon_tf.cli.prepare", ("`supcon-prepare`", "--input:", "--[no]overwrite:")),
        (
            "supcon_tf.cli.augment_preview",
            ("`supcon-augment-preview`", "--crop_min_area:", "--augment_strength:"),
        ),
    ],
)
def test_commands_print_help_and_exit_0(module, expected):
    completed, _ = run_as_user(module, ["--help"])
    assert completed.returncode == 0, completed.stderr[-3000:]
    for text in expected:
        assert text in completed.stdout
    assert "Output flags:" in completed.stdout and "(default: " in completed.stdout
    assert "--[no]traceback:" in completed.stdout
    assert "Try --helpfull" not in completed.stdout
    output = completed.stdout + completed.stderr
    assert not CPP_LOG_LINE.search(output) and not any(word in output for word in NOISE)
