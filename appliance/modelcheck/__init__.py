"""Edge TPU compatibility of a .tflite file, read from its flatbuffer without running it."""
