"""`supcon-train` with a fault injected (run as `python -m tests._fault_injection`).

    python -m tests._fault_injection --kill_after=N -- <supcon-train flags>

Faults (counted in this process, over all phases):
    --kill_after=N: SIGKILL right after the N-th training batch (and its checkpoint, if any).
    --kill_in_write=N: SIGKILL in the middle of the N-th checkpoint write, after half
        of the file was written under its temporary name.
    --term_after=N: SIGTERM (preemption) during the N-th training batch.
"""

import argparse
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill_after", type=int, default=0)
    parser.add_argument("--kill_in_write", type=int, default=0)
    parser.add_argument("--term_after", type=int, default=0)
    arguments, train_flags = parser.parse_known_args(argv)

    from supcon_tf.cli import train
    from supcon_tf.training import checkpoints

    counts = {"batches": 0, "writes": 0}
    on_train_batch_end = checkpoints.TrainingCheckpoint.on_train_batch_end
    write_atomically = checkpoints.write_atomically

    def batch_end(self, batch, logs=None):
        counts["batches"] += 1
        if counts["batches"] == arguments.term_after:
            os.kill(os.getpid(), signal.SIGTERM)
        on_train_batch_end(self, batch, logs)
        if counts["batches"] == arguments.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def write(path, data):
        if str(path).endswith(".npz"):
            counts["writes"] += 1
            if counts["writes"] == arguments.kill_in_write:
                os.makedirs(os.path.dirname(str(path)), exist_ok=True)
                with open(f"{path}.tmp-{os.getpid()}", "wb") as partial:
                    partial.write(data[: len(data) // 2])
                    partial.flush()
                    os.fsync(partial.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
        write_atomically(path, data)

    checkpoints.TrainingCheckpoint.on_train_batch_end = batch_end
    checkpoints.write_atomically = write
    sys.argv = ["supcon-train", *(flag for flag in train_flags if flag != "--")]
    train.run()


if __name__ == "__main__":
    main(sys.argv[1:])
