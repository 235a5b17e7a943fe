"""tune_ae: Ray Tune sweeps of fully connected autoencoders on Fashion-MNIST."""

__version__ = "0.1.0"
