"""The output folder of an export or of embeddings: new, empty, or replaced on request.

Example:

>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> _ = open(os.path.join(folder, "old.txt"), "w").write("x")
>>> try:
...     prepare_output(folder, overwrite=False)
... except UsageError as error:
...     print(str(error).split("; ")[1])
pass --overwrite to replace what it holds, or a new folder
>>> prepare_output(folder, overwrite=True)
>>> os.listdir(folder)
[]
"""

import tensorflow as tf

from supcon_tf.errors import UsageError


def check_output(output, overwrite):
    """Refuses a file, or a folder that holds anything unless `overwrite`; writes nothing."""
    output = str(output)
    if tf.io.gfile.exists(output) and not tf.io.gfile.isdir(output):
        raise UsageError(f"--output={output} is a file; pass a folder")
    if tf.io.gfile.isdir(output):
        entries = tf.io.gfile.listdir(output)
        if entries and not overwrite:
            raise UsageError(
                f"--output={output} is not empty ({len(entries)} entries); pass --overwrite "
                "to replace what it holds, or a new folder"
            )


def prepare_output(output, overwrite):
    """Creates `output`, empty; refuses one that holds anything unless `overwrite`."""
    check_output(output, overwrite)
    output = str(output)
    if tf.io.gfile.isdir(output) and tf.io.gfile.listdir(output):
        tf.io.gfile.rmtree(output)
    tf.io.gfile.makedirs(output)
