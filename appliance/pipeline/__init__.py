"""Capture -> latest-frame slot -> inference -> annotate/encode once -> viewers."""
