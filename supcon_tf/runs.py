"""The run folder of an experiment, and how an interrupted run resumes from it.

A run folder (`model_dir`) holds:

- `config.json`: the configuration; a run is only resumed with the same one
  (`RunDirectory.record_config`).
- `backup/<phase>/`: the training state of an unfinished phase, written by
  `backup_callback` and read back by `resume_position`.
- `logs/<phase>/`: the phase's `history.csv` and TensorBoard logs.
- `phases/<phase>.json`: the completion marker of a finished phase, holding its
  result; a finished phase is not run again (`RunDirectory.run_phase`).
- `report.json` and the saved models (written by the experiment).

Everything that decides whether, and where, a run resumes lives here, so that
resumption rules (atomic writes, locks, stopping on a signal) have one home.

Example:

>>> import tempfile
>>> run = RunDirectory(tempfile.mkdtemp())
>>> run.run_phase("pretrain", lambda: {"loss": 0.5}, seed=0)["loss"]
0.5
>>> run.run_phase("pretrain", lambda: {"loss": 9.9}, seed=0)["loss"]  # finished: not rerun
0.5
>>> run.resume_position("classifier", backup_steps=0)  # no backup: a fresh start
(0, 0)
"""

import dataclasses
import json
import os
import time
from pathlib import Path

import keras

from supcon_tf.distribute import MidEpochBackupAndRestore


@dataclasses.dataclass(frozen=True)
class PhasePaths:
    """The folders and files of one phase in a run folder."""

    backup: Path
    logs: Path
    marker: Path


def write_json(path, payload):
    """Writes `payload` as indented JSON to `path` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def resume_position(backup_dir, backup_steps):
    """`(epoch, steps done in it)` where the phase's backup resumes (`(0, 0)` if fresh).

    A mid-epoch backup (`backup_steps > 0`) records the index of the last batch done.

    Args:
        backup_dir: the phase's backup folder (`MidEpochBackupAndRestore`'s).
        backup_steps: the run's `backup_steps` (0: backups at the end of epochs).

    Example:

    >>> import tempfile
    >>> resume_position(tempfile.mkdtemp(), backup_steps=5)
    (0, 0)
    """
    for name in ("training_metadata.json", "training_metadata.json.bkp"):
        path = Path(backup_dir) / name
        if path.is_file() and (Path(backup_dir) / "latest.weights.h5").is_file():
            metadata = json.loads(path.read_text())
            steps_done = int(metadata.get("batch", -1)) + 1 if backup_steps else 0
            return int(metadata["epoch"]), steps_done
    return 0, 0


class RunDirectory:
    """The output folder of one run: configuration, backups, logs, markers, report.

    Args:
        model_dir: the folder (created if missing).
    """

    def __init__(self, model_dir):
        self.root = Path(model_dir)
        self.root.mkdir(parents=True, exist_ok=True)

    def phase_paths(self, phase):
        """The `PhasePaths` of `phase`."""
        return PhasePaths(
            backup=self.root / "backup" / phase,
            logs=self.root / "logs" / phase,
            marker=self.root / "phases" / f"{phase}.json",
        )

    def record_config(self, config, resumable_fields=()):
        """Writes `config.json`, refusing a folder that holds a run with another configuration.

        Args:
            config: the configuration as a JSON-compatible dict.
            resumable_fields: keys that may differ from the stored run's.

        Raises:
            ValueError: when a key outside `resumable_fields` differs.
        """
        path = self.root / "config.json"
        if path.is_file():
            previous = json.loads(path.read_text())
            differences = sorted(
                key
                for key in set(previous) | set(config)
                if key not in resumable_fields and previous.get(key) != config.get(key)
            )
            if differences:
                details = ", ".join(
                    f"{key}: {previous.get(key)!r} -> {config.get(key)!r}" for key in differences
                )
                raise ValueError(
                    f"{self.root} holds a run with a different configuration ({details}); "
                    "use a new model_dir, or delete it to start over."
                )
        write_json(path, config)

    def run_phase(self, phase, train, seed):
        """Returns `train()`'s result dict, or the stored one when the phase is finished.

        A new run of the phase seeds Keras with `seed`, adds `"seconds"` to the result
        and writes it as the phase's completion marker.
        """
        marker = self.phase_paths(phase).marker
        if marker.is_file():
            return json.loads(marker.read_text())
        keras.utils.set_random_seed(seed)
        start = time.perf_counter()
        result = train()
        result["seconds"] = time.perf_counter() - start
        write_json(marker, result)
        return result

    def resume_position(self, phase, backup_steps):
        """`(epoch, steps done in it)` where `phase` resumes (see `resume_position`)."""
        return resume_position(self.phase_paths(phase).backup, backup_steps)

    def backup_callback(self, phase, backup_steps):
        """The callback that backs `phase` up every `backup_steps` steps (0: every epoch)."""
        return MidEpochBackupAndRestore(
            str(self.phase_paths(phase).backup), backup_steps or "epoch"
        )

    def write_report(self, report):
        """Writes `report.json`."""
        write_json(self.root / "report.json", report)
