"""The web page, MJPEG stream and JSON API, served in the appliance's process."""
