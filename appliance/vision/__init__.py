"""Running TFLite models on the Edge TPU or the CPU, and reading their outputs."""
