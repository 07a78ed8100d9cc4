"""A newcomer's mistakes, each run as a user would: the line, the exit status, the seconds.

Every mistake is one command of a console script (`python -m supcon_tf.cli.<x>`, from
the repository root, with the user's environment: no `TF_CPP_MIN_LOG_LEVEL`), on small
data this script makes in a temporary folder. For each it records:

- the exit status and the seconds until the command gave up;
- the last line of stderr (the `<command>: error: <what>; <what to do>` line);
- whether a traceback or TensorFlow's start-up noise was printed;
- whether the `--model_dir` it named was left claimed (a lock, `config.json`,
  `flags.json`), which would refuse the corrected command.

Usage:

    python benchmarks/newcomer.py                 # every mistake, a Markdown table
    python benchmarks/newcomer.py --only typo_flag missing_dataset --json out.json

The test suite runs a few of them (tests/test_newcomer.py); each mistake class has its
own test beside the code it concerns.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NOISE = ("cudart_stub", "cpu_feature_guard", "absl::InitializeLog", "cuInit", "oneDNN custom")
RUN_FILES = (".lock", "config.json", "flags.json")


@dataclasses.dataclass
class Mistake:
    """One plausible mistake: the command's module and arguments, and what it should give."""

    name: str
    description: str
    module: str
    arguments: list
    expected_status: int
    model_dir: str | None = None


def _write_png(path, height, width, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def make_data(folder):
    """Small image folders: same-size, mixed-size, one with a corrupt image, no train/."""
    folder = Path(folder)
    sizes_of = {"same": [(24, 24)], "mixed": [(24, 24), (30, 20)], "corrupt": [(24, 24)]}
    for name, sizes in sizes_of.items():
        for split, count in (("train", 12), ("test", 4)):
            for label in ("a", "b"):
                for index in range(count):
                    height, width = sizes[index % len(sizes)]
                    path = folder / name / split / label / f"{index:02d}.png"
                    _write_png(path, height, width, seed=index)
    (folder / "corrupt" / "train" / "a" / "00.png").write_bytes(b"not an image")
    (folder / "no_train" / "test" / "a").mkdir(parents=True)
    _write_png(folder / "no_train" / "test" / "a" / "00.png", 24, 24, seed=0)
    for label in ("cat", "dog"):  # class folders straight under the root: no train/, test/
        _write_png(folder / "flat" / label / "00.png", 24, 24, seed=0)
    (folder / "not_a_run").mkdir()
    (folder / "not_a_run" / "notes.txt").write_text("an empty experiment folder\n")
    shards = folder / "shards_nonempty"
    shards.mkdir()
    (shards / "train-00000-of-00001").write_bytes(b"old shard")
    return folder


def mistakes(data):
    """The mistakes, over all six commands, on the folders `make_data` wrote."""
    data = Path(data)
    train, evaluate = "supcon_tf.cli.train", "supcon_tf.cli.evaluate"
    prepare, preview = "supcon_tf.cli.prepare", "supcon_tf.cli.augment_preview"
    export, embed = "supcon_tf.cli.export", "supcon_tf.cli.embed"

    def run_dir(name):
        return str(data / "runs" / name)

    def trainer(name, description, arguments, status):
        model_dir = run_dir(name)
        return Mistake(
            name, description, train, [*arguments, f"--model_dir={model_dir}"], status, model_dir
        )

    return [
        trainer("typo_flag", "a misspelt flag", ["--batchsize=8"], 2),
        trainer("bad_value", "a value that is not a number", ["--views=two"], 2),
        trainer("negative_temperature", "temperature below zero", ["--temperature=-1"], 2),
        trainer("unknown_dataset", "a misspelt dataset name", ["--dataset=cifar-10"], 2),
        trainer(
            "typo_dataset_with_image_size",
            "a misspelt dataset name, with --image_size",
            ["--dataset=cifar-10", "--image_size=32"],
            2,
        ),
        trainer(
            "missing_dataset",
            "a dataset folder that does not exist",
            [f"--dataset={data / 'nowhere'}"],
            1,
        ),
        trainer(
            "data_dir_nowhere",
            "--data_dir pointing nowhere",
            ["--dataset=cifar10", f"--data_dir={data / 'nowhere'}"],
            1,
        ),
        trainer(
            "mixed_sizes",
            "a folder of mixed image sizes without --image_size",
            [f"--dataset={data / 'mixed'}"],
            1,
        ),
        trainer(
            "corrupt_image",
            "a folder with an unreadable image",
            [f"--dataset={data / 'corrupt'}", "--image_size=24"],
            1,
        ),
        trainer(
            "no_train_split",
            "a folder without train/",
            [f"--dataset={data / 'no_train'}", "--image_size=24"],
            1,
        ),
        trainer(
            "flat_class_folders",
            "class folders without train/ and test/ (a common layout elsewhere)",
            [f"--dataset={data / 'flat'}"],
            1,
        ),
        trainer(
            "validation_fraction_one",
            "--validation_fraction=1 (nothing left to train on)",
            ["--validation_fraction=1"],
            2,
        ),
        trainer(
            "unseen_classes_without_split",
            "--unseen_classes without --split=class_disjoint",
            ["--unseen_classes=5,6,7"],
            2,
        ),
        trainer(
            "class_disjoint_streamed",
            "the class-disjoint split on a streamed folder",
            ["--split=class_disjoint", f"--dataset={data / 'same'}", "--image_size=24"],
            2,
        ),
        trainer(
            "preset_batch_too_large",
            "the 2020 preset on a small folder (its batches exceed the splits)",
            ["--preset=keras_example_2020", f"--dataset={data / 'same'}"],
            1,
        ),
        trainer("simclr_one_view", "SimCLR with one view", ["--method=simclr", "--views=1"], 2),
        trainer(
            "image_size_in_ram",
            "--image_size with a dataset held in RAM",
            ["--dataset=digits", "--image_size=32"],
            2,
        ),
        trainer("positional_argument", "a positional argument", ["digits"], 2),
        Mistake("eval_no_model_dir", "supcon-eval without --model_dir", evaluate, [], 2),
        Mistake(
            "eval_missing_run",
            "supcon-eval on a folder that does not exist",
            evaluate,
            [f"--model_dir={data / 'nowhere'}"],
            1,
        ),
        Mistake(
            "eval_not_a_run",
            "supcon-eval on a folder that holds no run",
            evaluate,
            [f"--model_dir={data / 'not_a_run'}"],
            1,
        ),
        Mistake(
            "export_not_a_run",
            "supcon-export of a folder that holds no finished run",
            export,
            [f"--model_dir={data / 'not_a_run'}", f"--output={data / 'export'}"],
            1,
        ),
        Mistake(
            "embed_without_output",
            "supcon-embed without --output",
            embed,
            [f"--model_dir={data / 'not_a_run'}"],
            2,
        ),
        Mistake(
            "prepare_missing_input",
            "supcon-prepare on a folder that does not exist",
            prepare,
            [f"--input={data / 'nowhere'}", f"--output={data / 'out'}"],
            1,
        ),
        Mistake(
            "prepare_non_empty_output",
            "supcon-prepare into a folder that already holds shards",
            prepare,
            [f"--input={data / 'same'}", f"--output={data / 'shards_nonempty'}"],
            2,
        ),
        Mistake(
            "prepare_zero_shards",
            "supcon-prepare with --num_shards=0",
            prepare,
            [f"--input={data / 'same'}", f"--output={data / 'out0'}", "--num_shards=0"],
            2,
        ),
        Mistake(
            "preview_old_flag_name",
            "supcon-augment-preview with --min_crop_area (the trainer's name is --crop_min_area)",
            preview,
            ["--min_crop_area=0.3", f"--output={data / 'preview.png'}"],
            2,
        ),
    ]


def run_mistake(mistake, timeout=300):
    """Runs one mistake as a user would; returns a JSON-ready dict of what happened."""
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    environment["PYTHONPATH"] = str(ROOT)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", mistake.module, *mistake.arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.monotonic() - start
    errors = result.stderr.strip().splitlines()
    left = []
    if mistake.model_dir and Path(mistake.model_dir).exists():
        left = sorted(name for name in RUN_FILES if (Path(mistake.model_dir) / name).exists())
    return {
        "name": mistake.name,
        "mistake": mistake.description,
        "command": " ".join(
            [f"python -m {mistake.module}", *(str(argument) for argument in mistake.arguments)]
        ),
        "exit_status": result.returncode,
        "expected_status": mistake.expected_status,
        "seconds": round(seconds, 1),
        "line": errors[-1] if errors else "",
        "error_lines": sum(": error: " in line for line in errors),
        "traceback": "Traceback" in result.stderr,
        "noise": [marker for marker in NOISE if marker in result.stderr],
        "left_in_model_dir": left,
    }


def is_clear(outcome):
    """The verdict: the expected status, one error line, no traceback, noise or claim."""
    return (
        outcome["exit_status"] == outcome["expected_status"]
        and outcome["error_lines"] == 1
        and not outcome["traceback"]
        and not outcome["noise"]
        and not outcome["left_in_model_dir"]
    )


def markdown_table(outcomes):
    rows = [
        "| mistake | exit | s | the line | clear |",
        "|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        line = outcome["line"].replace("|", "\\|")
        rows.append(
            f"| {outcome['mistake']} | {outcome['exit_status']} | {outcome['seconds']} | "
            f"`{line}` | {'yes' if is_clear(outcome) else 'NO'} |"
        )
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="names of the mistakes to run (default: all)")
    parser.add_argument("--json", help="write the outcomes to this JSON file")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        data = make_data(folder)
        chosen = mistakes(data)
        if arguments.only:
            unknown = set(arguments.only) - {mistake.name for mistake in chosen}
            if unknown:
                parser.error(f"unknown mistakes {sorted(unknown)}")
            chosen = [mistake for mistake in chosen if mistake.name in arguments.only]
        outcomes = []
        for mistake in chosen:
            outcomes.append(run_mistake(mistake))
            print(json.dumps(outcomes[-1]), file=sys.stderr, flush=True)
    print(markdown_table(outcomes))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(outcomes, indent=2) + "\n")
    return 0 if all(is_clear(outcome) for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
