"""`python -m supcon_tf.train`: the same command as `supcon-train`."""

from supcon_tf.cli.train import run

if __name__ == "__main__":
    run()
