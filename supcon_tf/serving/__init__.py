"""Serving a trained run: one SavedModel to embed, classify and search, and embeddings on disk.

* `runs`: a finished `supcon-train` run folder, its models and how it read images;
* `preprocessing`: raw images to the encoder's input, inside the graph;
* `module`: `ServingModule`, the `tf.Module` with the serving signatures;
* `images`: a dataset read for embedding, as the run read it at evaluation;
* `export`: `export_run`, what `supcon-export` runs;
* `embed`: `write_embeddings`, what `supcon-embed` runs.
"""
