"""MQTT: availability, state, events and commands on a broker, Home Assistant discovery, fleet class sets."""
