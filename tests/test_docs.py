"""The documentation runs as written.

- Every ```python block of README.md and docs/*.md runs: the blocks of one file in order, in one
  namespace (a later block may use what an earlier one defined), in a fresh Python process
  whose working folder is a temporary one. A block that cannot run here (it needs an
  accelerator, a download or hours) says so: its fence reads ```python no-run and its first
  line is a comment giving the reason.
- Every `supcon-*` command line in README.md and docs/*.md names only flags that the command
  defines, with values its flags accept: each line is parsed by the command's own absl flags.
  The README's training commands each train into their own `--model_dir`.
- Every relative link of the docs and of benchmarks/RESULTS.md reaches a file and heading.

New blocks and command lines are found and checked without touching this file.
"""

import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
NO_RUN = "no-run"
SECONDS_PER_DOCUMENT = 240

# Runs the blocks listed in a JSON file ([[markdown path, first line, source], ...]) in one
# namespace. Each block is compiled under the markdown file's name, padded to its first line,
# so that a traceback points at the line of the document.
_RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for path, line, source in json.load(open(sys.argv[1], encoding="utf-8")):
    exec(compile("\\n" * (line - 1) + source, path, "exec"), namespace)
"""


def code_blocks(path):
    """(info words, body, first line of the body) of each fenced block of a markdown file."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start("body")) + 1
        blocks.append((match.group("info").split(), match.group("body"), line))
    return blocks


def python_blocks(path):
    return [block for block in code_blocks(path) if block[0][:1] == ["python"]]


def _name(path):
    return str(path.relative_to(ROOT))


# The documents with at least one block to run.
DOCUMENTS_WITH_PYTHON = [
    path for path in DOCUMENTS if any(NO_RUN not in info for info, _, _ in python_blocks(path))
]


def run_python_blocks(path, name, folder):
    """Runs the blocks of `path` not marked no-run, in order, in one namespace, in a fresh
    process working in `folder/work`; returns the `CompletedProcess` (None: nothing to run)."""
    runnable = [
        [name, line, body] for info, body, line in python_blocks(path) if NO_RUN not in info
    ]
    if not runnable:
        return None
    blocks_file = folder / "blocks.json"
    blocks_file.write_text(json.dumps(runnable), encoding="utf-8")
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MPLBACKEND": "Agg",
        "KERAS_HOME": str(folder / "keras_home"),
    }
    work = folder / "work"
    work.mkdir()
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, str(blocks_file)],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=SECONDS_PER_DOCUMENT,
    )


def unexplained_no_run_blocks(path):
    """First lines of the no-run blocks whose first line is not a comment giving the reason."""
    return [
        line
        for info, body, line in python_blocks(path)
        if NO_RUN in info and not body.lstrip().startswith("# ")
    ]


@pytest.mark.parametrize("path", DOCUMENTS_WITH_PYTHON, ids=_name)
def test_python_blocks_run_in_order(path, tmp_path):
    result = run_python_blocks(path, _name(path), tmp_path)
    assert result.returncode == 0, f"{_name(path)}:\n{result.stderr[-6000:]}"


def test_blocks_that_do_not_run_say_why():
    unexplained = {_name(path): unexplained_no_run_blocks(path) for path in DOCUMENTS}
    assert not any(unexplained.values()), (
        f"```python {NO_RUN} blocks must start with a comment saying why: {unexplained}"
    )


SAMPLE = """# A sample

```python
total = 1
```

Text.

```python no-run
# Needs a TPU.
raise RuntimeError("not run")
```

```python no-run
raise RuntimeError("not run either")
```

```python
total += 1
assert total == 2
raise ValueError("the third block fails")
```
"""


def test_the_runner_shares_one_namespace_and_points_at_the_failing_line(tmp_path):
    document = tmp_path / "sample.md"
    document.write_text(SAMPLE, encoding="utf-8")
    result = run_python_blocks(document, "sample.md", tmp_path)
    assert result.returncode == 1
    assert 'File "sample.md", line 21' in result.stderr
    assert "ValueError: the third block fails" in result.stderr
    assert "not run" not in result.stderr
    assert unexplained_no_run_blocks(document) == [15]


# The module that defines each console script's flags (its `define_flags`).
FLAG_MODULES = {
    "supcon-train": "supcon_tf.cli.flags",
    "supcon-eval": "supcon_tf.cli.evaluate",
    "supcon-prepare": "supcon_tf.cli.prepare",
    "supcon-augment-preview": "supcon_tf.cli.augment_preview",
    "supcon-export": "supcon_tf.cli.export",
    "supcon-embed": "supcon_tf.cli.embed",
    "supcon-compare": "supcon_tf.cli.compare",
}


def define_command_flags(command, flag_values):
    """Defines `command`'s flags on `flag_values` with the command's own code."""
    importlib.import_module(FLAG_MODULES[command]).define_flags(flag_values)


# Handled before absl parses the flags (the grouped help), so not flags of the FlagValues.
HELP_ARGUMENTS = {"--help", "-h", "-?", "--helpshort", "--helpfull"}


def command_lines(path):
    """(line, words, whole) of each `supcon-*` command in the shell blocks and inline code of a file.

    `whole` is true for the lines of shell blocks, which are meant to be run as they stand;
    inline code may abbreviate (`--augment=...`), so only its flag names count. A shell line continued with a backslash is joined to the next; comments are dropped;
    `VAR=value` prefixes and `python -m supcon_tf.train` are read as the command.
    """
    text = path.read_text(encoding="utf-8")
    found = []
    for info, body, first_line in code_blocks(path):
        if info[:1] and info[0] not in SHELL_LANGUAGES:
            continue
        joined, start = "", None
        for offset, raw in enumerate(body.splitlines()):
            start = first_line + offset if start is None else start
            if raw.rstrip().endswith("\\"):
                joined += raw.rstrip()[:-1] + " "
                continue
            found.extend((start, words, True) for words in _commands_in(joined + raw))
            joined, start = "", None
    for match in re.finditer(r"`(supcon-[a-z-]+ [^`]*)`", text):
        line = text.count("\n", 0, match.start()) + 1
        found.extend((line, words, False) for words in _commands_in(match.group(1)))
    return found


def _commands_in(shell_line):
    try:
        words = shlex.split(shell_line, comments=True)
    except ValueError:  # an unbalanced quote: not a command line
        return []
    commands, current = [], None
    for word in words + ["&&"]:
        if word in ("&&", "||", ";", "|"):
            if current:
                commands.append(current)
            current = None
        elif current is not None:
            current.append(word)
        elif word in FLAG_MODULES:
            current = [word]
        elif word == "supcon_tf.train" or word.startswith("supcon_tf.cli."):
            current = [_script_of_module(word)]
    return [command for command in commands if command[0]]


def _script_of_module(module):
    scripts = {
        "supcon_tf.train": "supcon-train",
        "supcon_tf.cli.train": "supcon-train",
        "supcon_tf.cli.evaluate": "supcon-eval",
        "supcon_tf.cli.prepare": "supcon-prepare",
        "supcon_tf.cli.augment_preview": "supcon-augment-preview",
        "supcon_tf.cli.export": "supcon-export",
        "supcon_tf.cli.embed": "supcon-embed",
        "supcon_tf.cli.compare": "supcon-compare",
    }
    return scripts.get(module)


DOCUMENTED_COMMANDS = [
    pytest.param(words, whole, id=f"{_name(path)}:{line}:{words[0]}")
    for path in DOCUMENTS
    for line, words, whole in command_lines(path)
]


def test_the_readme_has_command_lines():
    assert any(_name(path) == "README.md" for path in DOCUMENTS)
    assert len(command_lines(ROOT / "README.md")) >= 10


def check_command(words, whole):
    """Raises if the command line `words` names a flag its command lacks.

    A whole line (from a shell block) is parsed and validated as the command does: bounds,
    choices, required flags (paths need not exist). Inline code may abbreviate values
    (`--augment=...`) or sit beside `--help`: there only the flag names count.
    """
    flag_values = flags.FlagValues()
    define_command_flags(words[0], flag_values)
    if "traceback" not in flag_values:  # every command adds it as it starts
        flags.DEFINE_bool("traceback", False, "Show the traceback.", flag_values=flag_values)
    arguments = [word for word in words[1:] if word not in HELP_ARGUMENTS]
    if whole and len(arguments) == len(words) - 1:
        flag_values([words[0], *arguments])
        return
    for word in arguments:
        if not word.startswith("--"):
            raise ValueError(f"{word!r} is not a flag of {words[0]}")
        name = word[2:].split("=")[0]
        if name not in flag_values and not (name.startswith("no") and name[2:] in flag_values):
            raise ValueError(f"{words[0]} has no flag --{name}")


@pytest.mark.parametrize(("words", "whole"), DOCUMENTED_COMMANDS)
def test_command_line_names_only_its_flags(words, whole):
    check_command(words, whole)


class TestCheckCommand:
    def test_a_misspelt_flag_in_a_shell_line_fails(self):
        with pytest.raises(flags.UnrecognizedFlagError, match="min_crop_area"):
            check_command(["supcon-train", "--min_crop_area=0.2"], whole=True)

    def test_a_value_the_flag_refuses_fails(self):
        with pytest.raises(flags.IllegalFlagValueError, match="augment"):
            check_command(["supcon-train", "--augment=sometimes"], whole=True)

    def test_inline_code_is_checked_by_name(self):
        check_command(["supcon-train", "--augment=...", "--noevaluate"], whole=False)
        with pytest.raises(ValueError, match="supcon-eval has no flag --views"):
            check_command(["supcon-eval", "--views=2"], whole=False)

    def test_shell_lines_and_inline_code_are_found(self, tmp_path):
        document = tmp_path / "sample.md"
        document.write_text(
            "Run `supcon-eval --model_dir=a` or\n\n```bash\nTF_CPP_MIN_LOG_LEVEL=2 "
            "supcon-train --views=2 \\\n  --model_dir=b  # a comment\n"
            "python -m supcon_tf.cli.prepare --input=c --output=d && echo done\n```\n",
            encoding="utf-8",
        )
        assert command_lines(document) == [
            (4, ["supcon-train", "--views=2", "--model_dir=b"], True),
            (6, ["supcon-prepare", "--input=c", "--output=d"], True),
            (1, ["supcon-eval", "--model_dir=a"], False),
        ]


LINKED_DOCUMENTS = [
    *DOCUMENTS,
    ROOT / "benchmarks" / "RESULTS.md",
    *sorted((ROOT / "benchmarks" / "results").glob("*.md")),
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _without_code(text):
    """The text with fenced blocks and inline code blanked out (links and headings stay)."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path):
    """GitHub's anchors of the headings of a markdown file (`-1`, `-2` for repeats)."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", FENCE.sub("", path.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, repeat = slug, 0
        while candidate in found:
            repeat += 1
            candidate = f"{slug}-{repeat}"
        found.add(candidate)
    return found


@pytest.mark.parametrize("path", LINKED_DOCUMENTS, ids=_name)
def test_relative_links_reach_a_file_and_heading(path):
    broken = []
    for target in LINK.findall(_without_code(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{_name(path)}: {broken}"


def test_readme_training_commands_each_have_their_own_model_dir():
    """Run one after another, the README's commands never meet a folder holding another run."""
    model_dirs = []
    for _, words, whole in command_lines(ROOT / "README.md"):
        if whole and words[0] == "supcon-train" and not HELP_ARGUMENTS & set(words):
            given = [word.split("=", 1)[1] for word in words if word.startswith("--model_dir=")]
            model_dirs.append(given[-1] if given else "runs/supcon")
    assert len(model_dirs) >= 5
    repeated = sorted({folder for folder in model_dirs if model_dirs.count(folder) > 1})
    assert not repeated, f"README.md trains twice into {repeated}"
