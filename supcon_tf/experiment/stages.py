"""The training stages of an experiment: each trains, saves its model and returns results.

`Stages.pretrain` (SupCon or SimCLR pretraining, `encoder.keras`),
`Stages.train_classifier` (a head on the frozen encoder, `classifier.keras`),
`Stages.train_baseline` (cross-entropy end to end, `baseline.keras`),
`Stages.train_hybrid` (one-stage SupCon + cross-entropy, `hybrid.keras`) and, with the
class-disjoint split, `Stages.train_unseen_probe` (a linear probe of a frozen encoder on
the unseen classes, `unseen_probe.keras` / `unseen_baseline_probe.keras`). Each is run
through `RunDirectory.run_phase`, so a finished stage is not trained again.
`supcon_tf.experiment.run.run_experiment` calls them in order.
"""

import keras

from supcon_tf.evaluation.retrieval_section import classifier_encoder
from supcon_tf.experiment import components
from supcon_tf.experiment.config import PHASES
from supcon_tf.experiment.features import AUGMENTED_COPIES, FrozenFeatures, embed_inputs
from supcon_tf.experiment.inputs import unseen_inputs
from supcon_tf.experiment.phases import (
    build_phase_optimizer,
    compile_classifier,
    evaluate_split,
    fit_phase,
)
from supcon_tf.files import join
from supcon_tf.models import (
    HybridSupConModel,
    build_cross_entropy_classifier,
    build_linear_classifier,
    linear_head,
)
from supcon_tf.training.distribute import synchronize_batch_norm
from supcon_tf.training.selection import BestEpoch

# The linear-probe phase on the unseen classes of each arm (class-disjoint split).
UNSEEN_PROBES = {"supcon": "unseen_probe", "cross_entropy": "unseen_baseline_probe"}


class Stages:
    """The training stages of one run (see the module docstring).

    Args:
        config: the `ExperimentConfig`.
        inputs: the run's `ArrayInputs` or `StreamInputs`.
        run: the `RunDirectory`.
        stop_requested: optional callable; True stops at the next step (SIGTERM).
    """

    def __init__(self, config, inputs, run, stop_requested=None):
        self.config = config
        self.inputs = inputs
        self.run_directory = run
        self.stop_requested = stop_requested

    def run(self, phase, train):
        """`train()`'s result, or the stored one when the phase finished in an earlier call."""
        seed = self.config.seed + PHASES.index(phase)
        return self.run_directory.run_phase(phase, train, seed=seed)

    def pretrain(self):
        """Contrastive pretraining of a new encoder; saves `encoder.keras`."""
        config, inputs = self.config, self.inputs
        model = components.new_supcon_model(
            config,
            inputs.input_shape,
            crop=not inputs.streamed,
            gradient_cache_chunk_size=config.gradient_cache_chunk_size,
            memory_size=config.memory_size,
            momentum_encoder=config.momentum_encoder,
            momentum=config.encoder_momentum,
        )
        training_batches = self._prepare_contrastive(model, labels=config.method != "simclr")
        # Integer class labels (or none): the memory bank is built now, so that a
        # checkpoint restored by `fit_phase` finds its variables.
        model.build_memory_bank(labels_shape=(None,))
        history, initial_epoch = self._fit(
            model,
            "pretrain",
            training_batches,
            config.pretrain_epochs,
            config.batch_size,
            callbacks=components.knn_monitors(model.encoder, inputs, config),
        )
        model.encoder.save(join(self.run_directory.root, "encoder.keras"))
        return {"history": history, "resumed_from_epoch": initial_epoch}

    def train_classifier(self):
        """A classifier head on the saved, frozen encoder; saves `classifier.keras`."""
        encoder = self._load("encoder.keras")
        return self._probe("classifier", encoder, self.inputs)

    def train_unseen_probe(self, arm):
        """The classifier stage's head on `arm`'s frozen encoder, on the unseen classes.

        `arm` is `"supcon"` (`encoder.keras`) or `"cross_entropy"` (the encoder inside
        `baseline.keras`, whose output its head reads); trained on the unseen classes'
        training images with the classifier stage's recipe, scored on their validation
        and test images; saves `unseen_probe.keras` or `unseen_baseline_probe.keras`.
        """
        if arm == "supcon":
            encoder = self._load("encoder.keras")
        else:
            encoder = classifier_encoder(self._load("baseline.keras"))
        return self._probe(UNSEEN_PROBES[arm], encoder, unseen_inputs(self.inputs))

    def _load(self, file_name):
        return keras.saving.load_model(join(self.run_directory.root, file_name), safe_mode=True)

    def _probe(self, phase, encoder, inputs):
        """A head on the frozen `encoder` for `inputs`' classes, trained as `phase`.

        On a dataset in RAM the encoder embeds the images once (augmented copies of
        the training set with `augment`, see `supcon_tf.experiment.features`) and the
        head trains on the features; the saved model is the classifier from images to
        logits, whose layers the head shares. A streamed dataset's head trains on its
        images, whose crops the input pipeline draws in every step.
        """
        config = self.config
        model = build_linear_classifier(
            encoder,
            inputs.num_classes,
            hidden_units=config.classifier_hidden_units,
            dropout=config.classifier_dropout,
            hidden_activation=config.classifier_hidden_activation,
            standardize=config.classifier_standardize,
        )
        # The classifier stage trains with its own recipe (classifier_* settings).
        epochs, recipe = config.classifier_epochs, config.classifier_recipe()
        if inputs.streamed:
            return self._classify(phase, model, epochs, recipe, inputs)
        augmenter = components.augmenter(config) if config.augment != "none" else None
        features = embed_inputs(
            encoder, inputs, recipe.batch_size, augmenter, copies=min(AUGMENTED_COPIES, epochs)
        )
        return self._classify(phase, linear_head(model), epochs, recipe, features, saved=model)

    def train_baseline(self):
        """A new encoder and head trained end to end with cross-entropy; saves `baseline.keras`."""
        config = self.config
        model = build_cross_entropy_classifier(
            components.new_encoder(config, self.inputs.input_shape),
            self.inputs.num_classes,
            hidden_units=config.classifier_hidden_units,
            dropout=config.classifier_dropout,
            hidden_activation=config.classifier_hidden_activation,
        )
        synchronize_batch_norm(model, config.sync_batchnorm)
        return self._classify(
            "baseline", model, config.effective_baseline_epochs(), config.training_recipe()
        )

    def train_hybrid(self):
        """One-stage `HybridSupConModel` on a new encoder; saves `hybrid.keras` (its classifier)."""
        config, inputs = self.config, self.inputs
        model = HybridSupConModel(
            components.new_supcon_model(config, inputs.input_shape, crop=not inputs.streamed),
            num_classes=inputs.num_classes,
            hybrid_weight=config.hybrid_weight,
        )
        training_batches = self._prepare_contrastive(model, labels=True)
        history, initial_epoch = self._fit(
            model, "hybrid", training_batches, config.pretrain_epochs, config.batch_size
        )
        classifier = model.classifier()
        compile_classifier(classifier, config.training_recipe(), 1, inputs.num_train)
        return {
            **self._save_and_score(classifier, "hybrid", config.batch_size, inputs),
            "history": history,
            "resumed_from_epoch": initial_epoch,
        }

    def _fit(self, model, phase, batches, epochs, batch_size, num_train=None, **options):
        return fit_phase(
            model,
            self.run_directory,
            phase,
            batches,
            num_train or self.inputs.num_train,
            epochs,
            batch_size,
            backup_steps=self.config.backup_steps,
            verbose=self.config.verbose,
            should_stop=self.stop_requested,
            **options,
        )

    def _save_and_score(self, model, name, batch_size, inputs, saved=None):
        """Saves `saved` (default: `model`) as `<name>.keras`; returns `model`'s validation
        and test accuracy (on `inputs`) and test loss."""
        (saved or model).save(join(self.run_directory.root, f"{name}.keras"))
        _, validation_accuracy = evaluate_split(
            model, inputs.evaluation_batches("validation", batch_size)
        )
        test_loss, test_accuracy = evaluate_split(
            model, inputs.evaluation_batches("test", batch_size)
        )
        return {
            "test_accuracy": test_accuracy,
            "test_loss": test_loss,
            "validation_accuracy": validation_accuracy,
        }

    def _prepare_contrastive(self, model, labels):
        """Compiles and builds a contrastive `model`; returns its training-batch factory."""
        config, inputs = self.config, self.inputs
        model.compile(
            optimizer=build_phase_optimizer(
                config.training_recipe(), config.pretrain_epochs, inputs.num_train
            ),
            loss=components.contrastive_loss(config),
        )
        synchronize_batch_norm(model, config.sync_batchnorm)
        # A streamed dataset's pipeline draws the views (crops); in RAM the model does.
        views = config.views if inputs.streamed else None
        model(inputs.example_images(views))

        augmenter = components.stream_augmenter(config, inputs.streamed)

        def training_batches(end_epoch, first_epoch, step):
            return inputs.training_batches(
                config.batch_size,
                config.seed,
                end_epoch,
                first_epoch,
                step,
                labels,
                augmenter=augmenter,
                views=views,
            )

        return training_batches

    def _classify(self, phase, model, epochs, recipe, inputs=None, saved=None):
        """Trains a classifier phase with `recipe` on `inputs` (default: the run's), keeps
        its best validation epoch, saves `<phase>.keras`, evaluates validation and test.

        With `FrozenFeatures` as `inputs`, `model` is the head (features -> logits) of
        the classifier `saved` (images -> logits), which is saved with the head's
        trained optimizer.
        """
        config, inputs = self.config, inputs or self.inputs
        compile_classifier(model, recipe, epochs, inputs.num_train)
        model(inputs.example_images())
        # Frozen features carry their augmented copies; images are augmented per batch.
        augmentation = (
            {}
            if isinstance(inputs, FrozenFeatures)
            else {"augmenter": components.augmenter(config, crop=not inputs.streamed)}
        )

        def training_batches(end_epoch, first_epoch, step):
            return inputs.training_batches(
                recipe.batch_size, config.seed, end_epoch, first_epoch, step, **augmentation
            )

        best_epoch = None
        if inputs.num_validation and (config.select_best_epoch or config.early_stopping_patience):
            best_epoch = BestEpoch(
                join(self.run_directory.root, "best", phase),
                config.early_stopping_patience,
                monitor=config.best_epoch_monitor,
            )
        history, initial_epoch = self._fit(
            model,
            phase,
            training_batches,
            epochs,
            recipe.batch_size,
            num_train=inputs.num_train,
            validation_data=inputs.evaluation_batches("validation", recipe.batch_size),
            callbacks=[best_epoch] if best_epoch else [],
        )
        epochs_trained = initial_epoch + len(history.get("loss", []))
        selected_epoch = epochs_trained
        if best_epoch and config.select_best_epoch:
            selected_epoch = best_epoch.restore(model) or epochs_trained
        if saved is not None:
            saved.compile(
                optimizer=model.optimizer,
                loss=model.loss,
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            )
        return {
            **self._save_and_score(model, phase, recipe.batch_size, inputs, saved),
            "selected_epoch": selected_epoch,
            "epochs_trained": epochs_trained,
            "history": history,
            "resumed_from_epoch": initial_epoch,
        }
