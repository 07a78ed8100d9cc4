"""The default twin of benchmarks/newcomer.py: a few newcomer mistakes, each one clear line.

The script runs every mistake (over 25, all six commands); this runs three, one per
kind of failure (a flag, the data, a command other than the trainer), through the same
code, and asserts the script's verdict: the expected exit status, one
`<command>: error:` line, no traceback, no TensorFlow start-up noise, and nothing left
in `--model_dir` that would refuse the corrected command.
"""

import pytest

from benchmarks import newcomer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return newcomer.make_data(tmp_path_factory.mktemp("newcomer"))


@pytest.mark.parametrize("name", ["typo_flag", "mixed_sizes", "prepare_non_empty_output"])
def test_mistake_is_one_clear_line(data, name):
    (mistake,) = [mistake for mistake in newcomer.mistakes(data) if mistake.name == name]
    outcome = newcomer.run_mistake(mistake)
    assert newcomer.is_clear(outcome), outcome
    assert outcome["line"].startswith("supcon-")
    assert "; " in outcome["line"]  # what is wrong; what to do


def test_every_mistake_has_a_unique_name_and_an_expected_usage_or_data_status(data):
    chosen = newcomer.mistakes(data)
    assert len(chosen) >= 15
    assert len({mistake.name for mistake in chosen}) == len(chosen)
    assert {mistake.expected_status for mistake in chosen} == {1, 2}
    assert {mistake.module for mistake in chosen} == {
        "supcon_tf.cli.train",
        "supcon_tf.cli.evaluate",
        "supcon_tf.cli.prepare",
        "supcon_tf.cli.augment_preview",
        "supcon_tf.cli.export",
        "supcon_tf.cli.embed",
    }
