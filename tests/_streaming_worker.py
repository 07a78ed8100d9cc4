"""Generated image folders for the streaming tests, and their distributed subprocess side.

Run as `python -m tests._streaming_worker MODE --root=FOLDER --output=FILE`:

    mirrored: two logical CPU replicas of a `MirroredStrategy`; the stream goes through
        `strategy.distribute_datasets_from_function`, its per-replica batches are
        recorded, then `SupConModel.fit` trains two steps on it.
    multi_worker: one worker of a `MultiWorkerMirroredStrategy` (`TF_CONFIG` in the
        environment): records the images its input pipeline read in one epoch, then
        trains two steps with `fit_with_custom_loop` on the distributed stream.

Images of `write_id_folder` are constant colours that encode their identity: red
`4 * id + 2`, green `100 * label + 50`, so the mean of any crop names the file.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ID_TRAIN_PER_CLASS = 24
ID_TEST_PER_CLASS = 4


def write_id_folder(root, train_per_class=ID_TRAIN_PER_CLASS, test_per_class=ID_TEST_PER_CLASS):
    """Writes `<root>/{train,test}/{a,b}/NN.jpg`; returns `root`."""
    import numpy as np
    from PIL import Image

    identity = 0
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(("a", "b")):
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for index in range(count):
                pixel = np.array([4 * identity + 2, 100 * label + 50, 128], np.uint8)
                image = np.broadcast_to(pixel, (48, 64, 3)).copy()
                Image.fromarray(image).save(os.path.join(folder, f"{index:02d}.jpg"), quality=95)
                identity += 1
    return root


def identities(images):
    """The image identity of each crop `[..., H, W, 3]` (from its mean red value)."""
    import numpy as np

    red = np.asarray(images)[..., 0].mean(axis=(-2, -1)) * 255.0
    return np.rint((red - 2.0) / 4.0).astype(int)


def _configure_logical_cpus(count):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )


def _model():
    import keras

    from supcon_tf.losses import SupervisedContrastiveLoss
    from supcon_tf.models import SupConModel
    from supcon_tf.models.encoders import build_encoder

    model = SupConModel(build_encoder("small_cnn", (16, 16, 3), width_multiplier=0.25))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=SupervisedContrastiveLoss())
    return model


def _stream_function(splits, batch_size, views=None):
    from supcon_tf.data import make_training_stream

    def dataset_fn(input_context):
        return make_training_stream(
            splits, batch_size, 16, views=views, epochs=3, input_context=input_context
        )

    return dataset_fn


def run_mirrored(arguments):
    _configure_logical_cpus(2)
    import numpy as np
    import tensorflow as tf

    from supcon_tf.data import open_streaming_dataset

    splits = open_streaming_dataset(arguments.root, validation_fraction=0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    distributed = strategy.distribute_datasets_from_function(_stream_function(splits, 8))
    batches = []
    for step, (images, _) in enumerate(distributed):
        if step == len(splits.train.files) // 8:
            break
        local = strategy.experimental_local_results(images)
        batches.append([identities(replica).tolist() for replica in local])
    with strategy.scope():
        model = _model()
        model(np.zeros((2, 2, 16, 16, 3), "float32"))
    views = strategy.distribute_datasets_from_function(_stream_function(splits, 8, views=2))
    history = model.fit(views, epochs=1, steps_per_epoch=2, verbose=0)
    with open(arguments.output, "w") as file:
        json.dump({"batches": batches, "loss": history.history["loss"]}, file)


def run_multi_worker(arguments):
    import numpy as np
    import tensorflow as tf

    from supcon_tf.data import make_training_stream, open_streaming_dataset
    from supcon_tf.training.custom_loop import fit_with_custom_loop
    from supcon_tf.training.distribute import build_strategy

    strategy = build_strategy("multi_worker")
    splits = open_streaming_dataset(arguments.root, validation_fraction=0)
    contexts, read = [], []

    def recording(input_context):
        contexts.append((input_context.num_input_pipelines, input_context.input_pipeline_id))
        return make_training_stream(splits, 8, 16, epochs=1, input_context=input_context)

    # Reading this pipeline's dataset directly (no collective op) shows what it reads.
    distributed = strategy.distribute_datasets_from_function(recording)
    del distributed
    pipelines, pipeline_id = contexts[0]
    stream = make_training_stream(
        splits,
        8,
        16,
        epochs=1,
        input_context=tf.distribute.InputContext(pipelines, pipeline_id, 2),
    )
    for images, _ in stream:
        read.extend(identities(images).tolist())
    views = strategy.distribute_datasets_from_function(_stream_function(splits, 8, views=2))
    with strategy.scope():
        model = _model()
        model(np.zeros((2, 2, 16, 16, 3), "float32"))
        history = fit_with_custom_loop(model, views, epochs=1, steps_per_epoch=2)
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    with open(f"{arguments.output}.{task}", "w") as file:
        json.dump(
            {
                "pipelines": pipelines,
                "pipeline_id": pipeline_id,
                "read": read,
                "loss": history.history["loss"],
            },
            file,
        )


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["mirrored", "multi_worker"])
    parser.add_argument("--root", required=True)
    parser.add_argument("--output", required=True)
    arguments = parser.parse_args(argv)
    {"mirrored": run_mirrored, "multi_worker": run_multi_worker}[arguments.mode](arguments)


if __name__ == "__main__":
    main(sys.argv[1:])
