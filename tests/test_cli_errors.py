"""One-line errors and a quiet start of the commands (supcon_tf.cli.console).

The subprocess tests run each command as a user would (`python -m supcon_tf.cli.<x>`,
no `TF_CPP_MIN_LOG_LEVEL`): a mistake gives exactly one `<prog>: error:` line, the
exit status of its kind, no traceback and none of TensorFlow's C++ start-up lines.
"""

import errno
import os
import re
import subprocess
import sys

import pytest
from absl import flags

import supcon_tf
from supcon_tf.cli import console
from supcon_tf.cli.flags import apply_preset_to_flags, define_flags
from supcon_tf.cli.summary import settings_summary
from supcon_tf.errors import DataError, UsageError
from tests._processes import ROOT, run_as_user

# What TensorFlow's C++ side prints at start (a C++ source line, the CUDA probe, ...).
CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} .*\.cc:\d+\] ", re.MULTILINE)
NOISE = ("absl::InitializeLog", "cudart_stub", "cpu_feature_guard", "cuInit", "cuda drivers")


def assert_one_error_line(result, program, status, expected):
    """The run failed with `status` and printed one `program: error:` line, quietly."""
    output = result.stdout + result.stderr
    assert result.returncode == status, output[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"{program}: error: "), output[-3000:]
    assert expected in lines[-1], lines[-1]
    assert output.count(": error: ") == 1, output[-3000:]
    assert "Traceback" not in output
    assert not CPP_LOG_LINE.search(output) and not any(word in output for word in NOISE), output


# ----------------------------------------------------------------------------- in process


class TestErrorLine:
    @pytest.mark.parametrize(
        ("error", "line", "status"),
        [
            (
                UsageError("--batch_size=7 does not divide 2 replicas; pass a multiple of 2"),
                "supcon-train: error: --batch_size=7 does not divide 2 replicas; pass a "
                "multiple of 2",
                2,
            ),
            (
                DataError("No images in /data/x;\n check --dataset"),
                "supcon-train: error: No images in /data/x; check --dataset",
                1,
            ),
            (
                FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/x.npz"),
                "supcon-train: error: /data/x.npz does not exist; check the path",
                1,
            ),
            (
                FileNotFoundError("Dataset file /data/x.npz does not exist."),
                "supcon-train: error: Dataset file /data/x.npz does not exist; check the path",
                1,
            ),
            (
                flags.IllegalFlagValueError("flag --views=0: 0 is not a positive integer"),
                "supcon-train: error: --views=0: 0 is not a positive integer; see "
                "supcon-train --help",
                2,
            ),
            (
                flags.IllegalFlagValueError(
                    "flag --views=x: invalid literal for int() with base 10: 'x'"
                ),
                "supcon-train: error: --views=x: not an integer; see supcon-train --help",
                2,
            ),
            (
                flags.IllegalFlagValueError(
                    "flags method=simclr, views=1: --method=simclr needs --views >= 2 (the "
                    "other views ...)."
                ),
                "supcon-train: error: --method=simclr needs --views >= 2 (the other views ...); "
                "see supcon-train --help",
                2,
            ),
            (
                flags.IllegalFlagValueError(
                    "flag --input=None: Flag --input must have a value other than None."
                ),
                "supcon-train: error: --input is required; see supcon-train --help",
                2,
            ),
        ],
    )
    def test_line_and_status(self, error, line, status):
        assert console.error_line("supcon-train", error) == line
        assert console.exit_status(error) == status

    def test_unknown_flag_suggests_the_close_ones(self):
        names = ["batch_size", "classifier_batch_size", "crop_min_area", "seed"]
        error = flags.UnrecognizedFlagError("batchsize")
        assert console.error_line("supcon-train", error, names) == (
            "supcon-train: error: unknown flag --batchsize; did you mean --batch_size or "
            "--classifier_batch_size?"
        )
        assert console.error_line("x", flags.UnrecognizedFlagError("colour"), names) == (
            "x: error: unknown flag --colour; see x --help for the flags"
        )
        assert console.exit_status(error) == 2

    @pytest.mark.parametrize(
        ("argv", "name"),
        [
            (["/venv/bin/supcon-train", "--x"], "supcon-train"),
            (["C:\\venv\\Scripts\\supcon-eval.exe"], "supcon-eval"),
            (["/repo/supcon_tf/cli/train.py"], "supcon-train"),
            ([], "supcon-train"),
        ],
    )
    def test_program_name(self, argv, name):
        assert console.program_name("supcon-train", argv) == name


class TestStartUpFilter:
    LINES = {
        "banner": "WARNING: All log messages before absl::InitializeLog() is called are written",
        "info": "I0000 00:00:1796285450.607598    4857 cudart_stub.cc:31] Could not find cuda",
        "warning": "W0000 00:00:1796285450.607598    4857 gpu_device.cc:2] Cannot dlopen",
        "error": "E0000 00:00:1796285471.910735    4943 cuda_platform.cc:52] failed cuInit",
        "other": "UserWarning: something a user should see",
    }

    @pytest.mark.parametrize(
        ("level", "hidden"),
        [
            (0, set()),
            (1, {"banner", "info"}),
            (2, {"banner", "info", "warning"}),
            (3, {"banner", "info", "warning"}),  # Errors after start-up: TF hides them.
        ],
    )
    def test_hidden_lines_follow_the_level(self, level, hidden):
        assert {key for key, line in self.LINES.items() if console._is_hidden(line, level)} == (
            hidden
        )


def test_quiet_commands_drop_only_the_retracing_warning():
    code = (
        "import os, logging\n"
        "os.environ.pop('TF_CPP_MIN_LOG_LEVEL', None)\n"
        "import supcon_tf.cli.console as console\n"
        "console.quiet_tensorflow()\n"
        "import tensorflow as tf\n"
        "logging.basicConfig(format='%(message)s')\n"
        "tf.get_logger().warning('5 out of the last 13 calls to f triggered tf.function retracing.')\n"
        "tf.get_logger().warning('a warning a user should see')\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "a warning a user should see" in result.stderr
    assert "retracing" not in result.stderr


class TestRunCommand:
    """`run_command` in this process, on fresh flags, with a stand-in `main`."""

    @pytest.fixture(autouse=True)
    def absl_app_initialised(self, monkeypatch):
        # absl.app.run insists, the first time in a process, that the global FLAGS were
        # parsed; these tests parse their own FlagValues.
        monkeypatch.setitem(flags.FLAGS.__dict__, "__flags_parsed", True)

    def run(self, monkeypatch, main, *arguments):
        flag_values = flags.FlagValues()
        flags.DEFINE_integer("views", 2, "Views.", lower_bound=1, flag_values=flag_values)
        monkeypatch.setattr(sys, "argv", ["/venv/bin/supcon-demo", *arguments])
        with pytest.raises(SystemExit) as exit_info:
            console.run_command(main, "demo", "Demo.", {"loss": ("views",)}, flag_values)
        return exit_info.value.code

    def test_words_that_are_not_flags_are_refused_before_main(self, monkeypatch, capsys):
        calls = []
        assert self.run(monkeypatch, calls.append, "--views=2", "digits") == 2
        assert calls == []
        assert capsys.readouterr().err == (
            "supcon-demo: error: unexpected arguments digits; flags are written --name=value\n"
        )

    def test_expected_errors_are_one_line(self, monkeypatch, capsys):
        def main(argv):
            raise DataError("/data/x has no images; pass a folder of images")

        assert self.run(monkeypatch, main) == 1
        assert capsys.readouterr().err == (
            "supcon-demo: error: /data/x has no images; pass a folder of images\n"
        )
        assert self.run(monkeypatch, main, "--views=0") == 2
        assert capsys.readouterr().err == (
            "supcon-demo: error: --views=0: 0 is not a positive integer; see supcon-demo --help\n"
        )

    def test_traceback_flag_and_bugs_raise(self, monkeypatch, capsys):
        def usage(argv):
            raise UsageError("no; do this")

        def bug(argv):
            raise KeyError("a bug")

        flag_values = flags.FlagValues()
        monkeypatch.setattr(sys, "argv", ["supcon-demo", "--traceback"])
        with pytest.raises(UsageError, match="no; do this"):
            console.run_command(usage, "demo", "Demo.", {}, flag_values)
        monkeypatch.setattr(sys, "argv", ["supcon-demo"])
        with pytest.raises(KeyError, match="a bug"):
            console.run_command(bug, "demo", "Demo.", {}, flags.FlagValues())
        assert capsys.readouterr().err == ""

    def test_help_lists_traceback(self, monkeypatch, capsys):
        assert self.run(monkeypatch, lambda argv: None, "--help") == 0
        text = capsys.readouterr().out
        assert "Loss flags:\n  --views: Views." in text
        assert "Errors flags:\n  --[no]traceback: Show the Python traceback" in text


def test_settings_summary_names_each_source():
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    flag_values(["supcon-train", "--preset=keras_example", "--batch_size=32", "--nobaseline"])
    text = settings_summary(flag_values, apply_preset_to_flags(flag_values))
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:]}
    assert text.splitlines()[0].startswith("Settings of --preset=keras_example ")
    assert rows["batch_size"][1:] == ["32", "flag"]
    assert rows["baseline"][1:] == ["False", "flag"]
    assert rows["temperature"][1:] == ["0.05", "preset", "keras_example"]
    assert rows["classifier_dropout"][1:] == ["0.5", "preset", "keras_example"]
    assert rows["seed"][1:] == ["0", "default"]
    assert "preset" not in rows and "momentum" not in rows  # Unchanged: not listed.
    assert len(text) < 3000 and len(rows) < 40


class TestLazyPackage:
    def test_public_names_and_dir(self):
        assert sorted(supcon_tf.__all__) == sorted(supcon_tf._EXPORTS)
        for name in supcon_tf.__all__:
            assert name in dir(supcon_tf)
            assert getattr(supcon_tf, name).__name__ == name
        assert supcon_tf.SupervisedContrastiveLoss(temperature=0.2).temperature == 0.2
        assert supcon_tf.losses.SupervisedContrastiveLoss is supcon_tf.SupervisedContrastiveLoss
        with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
            _ = supcon_tf.nothing

    def test_import_does_not_start_tensorflow(self):
        code = "import sys, supcon_tf; print('tensorflow' in sys.modules, supcon_tf.__version__)"
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["False", supcon_tf.__version__]


# ----------------------------------------------------------------------------- as a user


@pytest.mark.parametrize(
    ("module", "arguments", "program", "status", "expected"),
    [
        (
            "supcon_tf.train",
            ["--batchsize=8"],
            "supcon-train",
            2,
            "unknown flag --batchsize; did you mean --batch_size",
        ),
        ("supcon_tf.train", ["--views=0"], "supcon-train", 2, "--views=0: 0 is not a positive"),
        ("supcon_tf.cli.evaluate", [], "supcon-eval", 2, "--model_dir is required"),
        (
            "supcon_tf.cli.evaluate",
            ["--model_dir={tmp}/no_run"],
            "supcon-eval",
            1,
            "no_run does not exist; pass the folder of a supcon-train run",
        ),
        (
            "supcon_tf.cli.prepare",
            ["--input={tmp}/no_images", "--output={tmp}/shards"],
            "supcon-prepare",
            1,
            "no_images has no train/ folder",
        ),
        (
            "supcon_tf.cli.augment_preview",
            ["--min_crop_area=0.2"],
            "supcon-augment-preview",
            2,
            "unknown flag --min_crop_area; did you mean --crop_min_area?",
        ),
        (
            "supcon_tf.cli.augment_preview",
            ["--augment=mixup"],
            "supcon-augment-preview",
            2,
            "--augment=mixup: value should be one of",
        ),
    ],
)
def test_a_mistake_is_one_quiet_line(tmp_path, module, arguments, program, status, expected):
    arguments = [argument.format(tmp=tmp_path) for argument in arguments]
    result, _ = run_as_user(module, arguments)
    assert_one_error_line(result, program, status, expected)
    assert not (tmp_path / "shards").exists()


def test_traceback_flag_and_the_users_log_level(tmp_path):
    arguments = [f"--input={tmp_path}/no_images", f"--output={tmp_path}/shards"]
    shown, _ = run_as_user("supcon_tf.cli.prepare", [*arguments, "--traceback"])
    assert shown.returncode == 1
    assert "Traceback (most recent call last)" in shown.stderr
    assert "FileNotFoundError: Image-folder dataset" in shown.stderr
    # The user's TF_CPP_MIN_LOG_LEVEL wins: 0 shows TensorFlow's C++ start-up lines.
    loud, _ = run_as_user("supcon_tf.cli.prepare", arguments, {"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert loud.returncode == 1 and CPP_LOG_LINE.search(loud.stderr), loud.stderr[-3000:]
    assert loud.stderr.count("supcon-prepare: error: ") == 1
