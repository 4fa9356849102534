"""Camera sources behind one small interface; every frame is an RGB uint8 array."""
