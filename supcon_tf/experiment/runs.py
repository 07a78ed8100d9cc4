"""The run folder of an experiment, and how an interrupted run resumes from it.

A run folder (`model_dir`) holds:

- `config.json`: the configuration; a run is only resumed with the same one
  (`RunDirectory.record_config`).
- `backup/<phase>/`: the training state of an unfinished phase
  (`supcon_tf.training.checkpoints.TrainingCheckpoint` files from `RunDirectory.checkpoint`),
  removed once the phase's marker is written.
- `logs/<phase>/`: the phase's `history.csv` and TensorBoard logs.
- `phases/<phase>.json`: the completion marker of a finished phase, holding its
  result; a finished phase is not run again (`RunDirectory.run_phase`).
- `report.json` and the saved models (written by the experiment); a folder whose
  report is there holds a complete run (`RunDirectory.complete_report`).
- `run.lock`: while a process trains in the folder, its PID and host
  (`RunDirectory.lock`); a second process refuses to start.

Nothing is written until the run claims the folder (`RunDirectory.lock`, then
`record_config`): a run refused before that (a failed preflight) leaves no trace.
`check_config` compares a configuration with the folder's without writing anything.

Everything that decides whether, and where, a run resumes lives here, so that
resumption rules (atomic writes, locks, stopping on a signal) have one home:
JSON files are written atomically (temporary file + rename), and `stop_on_sigterm`
turns SIGTERM (preemption) into a save at the next step boundary.

`model_dir` may be a local path or any `tf.io.gfile` URL (`gs://bucket/run` on TPU
VMs; see `supcon_tf.files`): every read and write goes through `tf.io.gfile`, and
paths are strings. One limit: an object store has no atomic exclusive create, so
there the lock is best effort (see `RunDirectory.lock`).

Example:

>>> import tempfile
>>> run = RunDirectory(tempfile.mkdtemp())
>>> run.run_phase("pretrain", lambda: {"loss": 0.5}, seed=0)["loss"]
0.5
>>> run.run_phase("pretrain", lambda: {"loss": 9.9}, seed=0)["loss"]  # finished: not rerun
0.5
>>> run.resume_position("classifier", steps_per_epoch=10)  # no backup: a fresh start
(0, 0)
>>> with run.lock():  # a second process (or lock) on the folder is refused
...     try:
...         RunDirectory(run.root).lock().__enter__()
...     except RunLockedError as error:
...         print("in use by process" in str(error))
True
"""

import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import threading
import time

import keras
import tensorflow as tf

from supcon_tf.errors import UsageError
from supcon_tf.files import is_file, is_remote, join, read_text, remove, write_atomically
from supcon_tf.training.checkpoints import TrainingCheckpoint, latest_position

LOCK_FILE = "run.lock"
CONFIG_FILE = "config.json"
REPORT_FILE = "report.json"

# On an object store the lock is written, then read back after this long: a process
# that wrote over it in the meantime is seen (see `RunDirectory.lock`).
REMOTE_LOCK_SETTLE_SECONDS = 1.0


class RunLockedError(RuntimeError):
    """Another live process trains in the run folder."""


@dataclasses.dataclass(frozen=True)
class PhasePaths:
    """The folders and files of one phase in a run folder (path strings)."""

    backup: str
    logs: str
    marker: str


def write_json(path, payload):
    """Writes `payload` as indented JSON to `path` through a temporary file and a rename."""
    write_atomically(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def resume_position(backup_dir, steps_per_epoch):
    """`(epoch, steps done in it)` where the phase's backup resumes (`(0, 0)` if fresh).

    Reads the newest readable checkpoint of `backup_dir`; damaged ones are skipped
    with a warning in the log (see `supcon_tf.training.checkpoints.latest_position`).

    Example:

    >>> import tempfile
    >>> resume_position(tempfile.mkdtemp(), steps_per_epoch=5)
    (0, 0)
    """
    return latest_position(os.fspath(backup_dir), steps_per_epoch)


class StopSignal:
    """Whether SIGTERM was received since `stop_on_sigterm` installed its handler."""

    def __init__(self):
        self.received = False

    def __call__(self):
        return self.received


@contextlib.contextmanager
def stop_on_sigterm():
    """Within the block, SIGTERM sets a `StopSignal` instead of ending the process.

    Pass the signal as `should_stop` of the checkpoints: training then saves at the
    next step boundary and raises `supcon_tf.training.checkpoints.StopRequested`. Outside the
    main thread (where Python cannot handle signals) the signal is never set.

    Example:

    >>> import os, signal
    >>> with stop_on_sigterm() as stop:
    ...     os.kill(os.getpid(), signal.SIGTERM)
    ...     stop()
    True
    """
    stop = StopSignal()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum, frame):
        logging.warning("SIGTERM received: saving at the next step boundary, then stopping.")
        stop.received = True

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


class RunDirectory:
    """The output folder of one run: configuration, backups, logs, markers, report.

    Args:
        model_dir: the folder (created when the run claims it, `lock`): a local path
            or a `tf.io.gfile` URL such as `gs://bucket/run`.

    Attributes:
        root: `model_dir` as a string; the paths of `phase_paths` are strings too.
    """

    def __init__(self, model_dir):
        self.root = os.fspath(model_dir)

    def phase_paths(self, phase):
        """The `PhasePaths` of `phase`."""
        return PhasePaths(
            backup=join(self.root, "backup", phase),
            logs=join(self.root, "logs", phase),
            marker=join(self.root, "phases", f"{phase}.json"),
        )

    @contextlib.contextmanager
    def lock(self):
        """Holds `run.lock` (this PID and host) for the block; refuses a folder in use.

        A lock left by a process that no longer runs on this host is stale: it is
        taken over, with a warning. A lock of another host cannot be checked; delete
        `run.lock` by hand once that process is gone.

        On a local disk the lock is created exclusively (a hard link: of two processes
        starting together, exactly one gets it). An object store (`gs://`) has no
        exclusive create: the lock is written with this process's host and PID, read
        back `REMOTE_LOCK_SETTLE_SECONDS` later, and refused if another process's
        owner is found there. This is best effort: two processes that start within
        the store's latency of each other may both go on.

        Raises:
            RunLockedError: another live process holds the lock.
        """
        tf.io.gfile.makedirs(self.root)
        path = join(self.root, LOCK_FILE)
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        create = _create_remote_lock if is_remote(path) else _create_local_lock
        if not create(path, owner):
            holder = _read_lock(path)
            if not _is_stale(holder):
                raise RunLockedError(_locked_message(self.root, path, holder))
            logging.warning(
                "Taking over the stale lock %s of process %s on %s (it no longer runs).",
                path,
                holder.get("pid"),
                holder.get("host"),
            )
            remove(path)
            if not create(path, owner):
                raise RunLockedError(_locked_message(self.root, path, _read_lock(path)))
        try:
            yield self
        finally:
            if _same_owner(_read_lock(path), owner):
                remove(path)

    def check_config(self, config, resumable_fields=(), defaults=None):
        """Refuses a folder that holds a run with another configuration; writes nothing.

        Args:
            config: the configuration as a JSON-compatible dict.
            resumable_fields: keys that may differ from the stored run's.
            defaults: optional `{key: default}`: a key that the stored configuration
                lacks (written by an older version, before the option existed) counts as
                unchanged while `config` holds its default.

        Raises:
            UsageError: when a key outside `resumable_fields` differs.
        """
        path = join(self.root, CONFIG_FILE)
        if not is_file(path):
            return
        previous = _read_json(path, "the run's configuration")
        previous = {**{k: v for k, v in (defaults or {}).items() if k not in previous}, **previous}
        differences = sorted(
            key
            for key in set(previous) | set(config)
            if key not in resumable_fields and previous.get(key) != config.get(key)
        )
        if differences:
            details = ", ".join(
                f"{key}: {previous.get(key)!r} -> {config.get(key)!r}" for key in differences
            )
            raise UsageError(
                f"{self.root} holds a run with a different configuration ({details}); "
                "use a new model_dir, or delete it to start over."
            )

    def record_config(self, config, resumable_fields=(), records=None, defaults=None):
        """Writes `config.json` (and `records`), refusing a run with another configuration.

        Args:
            config: the configuration as a JSON-compatible dict.
            resumable_fields: keys that may differ from the stored run's.
            defaults: the options' defaults, as `check_config` takes them.
            records: optional `{file name: JSON-compatible payload}` written beside it
                (`flags.json` of the command line).

        Raises:
            UsageError: when a key outside `resumable_fields` differs.
        """
        self.check_config(config, resumable_fields, defaults)
        write_json(join(self.root, CONFIG_FILE), config)
        for name, payload in (records or {}).items():
            write_json(join(self.root, name), payload)

    def complete_report(self):
        """The stored `report.json` of a complete run, or `None` when there is none."""
        path = join(self.root, REPORT_FILE)
        if not is_file(path):
            return None
        try:
            return _read_json(path, "the run's report")
        except ValueError as error:
            logging.warning("%s; the run is finished again.", error)
            return None

    def run_phase(self, phase, train, seed):
        """Returns `train()`'s result dict, or the stored one when the phase is finished.

        A new run of the phase seeds Keras with `seed`, adds `"seconds"` to the result
        and writes it as the phase's completion marker; then the phase's backup is
        removed (not before: a run killed in between resumes from its last state).
        """
        paths = self.phase_paths(phase)
        if is_file(paths.marker):
            try:
                return _read_json(paths.marker, f"the {phase} completion marker")
            except ValueError as error:
                logging.warning("%s; running the phase again.", error)
        keras.utils.set_random_seed(seed)
        start = time.perf_counter()
        result = train()
        result["seconds"] = time.perf_counter() - start
        write_json(paths.marker, result)
        if tf.io.gfile.exists(paths.backup):
            tf.io.gfile.rmtree(paths.backup)
        return result

    def resume_position(self, phase, steps_per_epoch):
        """`(epoch, steps done in it)` where `phase` resumes (see `resume_position`)."""
        return resume_position(self.phase_paths(phase).backup, steps_per_epoch)

    def checkpoint(self, phase, steps_per_epoch, epochs, backup_steps, should_stop=None):
        """The `TrainingCheckpoint` of `phase`: every `backup_steps` steps and every epoch end."""
        return TrainingCheckpoint(
            self.phase_paths(phase).backup,
            steps_per_epoch=steps_per_epoch,
            epochs=epochs,
            save_every=backup_steps,
            name=phase,
            should_stop=should_stop,
        )

    def write_report(self, report):
        """Writes `report.json`."""
        write_json(join(self.root, REPORT_FILE), report)


def _read_json(path, what):
    """The JSON object in `path`; a `ValueError` naming `what` when it is damaged."""
    try:
        payload = json.loads(read_text(path))
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise ValueError(f"Cannot read {what} {path}: {error}") from error
    if not isinstance(payload, dict):
        raise ValueError(f"Cannot read {what} {path}: expected a JSON object.")
    return payload


def _create_local_lock(path, owner):
    """Creates the lock file, complete, unless one exists (a hard link is atomic); whether it did."""
    temporary = f"{path}.{owner['pid']}.tmp"
    with open(temporary, "w") as file:
        file.write(json.dumps(owner))
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)
    return True


def _create_remote_lock(path, owner):
    """Writes the lock unless one exists, then reads it back; whether this process holds it.

    Best effort: an object store has no exclusive create (see `RunDirectory.lock`).
    """
    if is_file(path):
        return False
    write_atomically(path, json.dumps(owner))
    time.sleep(REMOTE_LOCK_SETTLE_SECONDS)
    return _same_owner(_read_lock(path), owner)


def _same_owner(holder, owner):
    """Whether the lock's `holder` is `owner` (same host, PID and start time)."""
    return all(holder.get(key) == owner[key] for key in ("pid", "host", "started"))


def _read_lock(path):
    """The lock's owner dict (`{}` when the file is gone or damaged)."""
    try:
        return _read_json(path, "the lock")
    except ValueError:
        return {}


def _is_stale(holder):
    """Whether a lock's process is known to be gone (same host, PID not running)."""
    if holder.get("host") != socket.gethostname():
        return not holder  # An empty or damaged lock is stale; another host's is not.
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (KeyError, ValueError, TypeError):
        return True
    except PermissionError:
        return False  # It runs, under another user.
    return False


def _locked_message(root, path, holder):
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if started else "?"
    return (
        f"{root} is in use by process {holder.get('pid')} on host "
        f"{holder.get('host')} (started {when}); wait for it to finish or stop it. If it "
        f"no longer runs, delete {path}."
    )
