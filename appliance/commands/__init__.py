"""Sub-commands of the `appliance` CLI, one module each (see appliance.cli)."""
