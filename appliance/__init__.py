"""A teachable camera appliance: Edge TPU (or CPU) recognition, few-shot teaching, a web page."""

__version__ = "0.1.0"
