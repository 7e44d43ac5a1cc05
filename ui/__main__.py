"""``python -m aquarium.ui``: the same as ``aquarium ui``."""

from aquarium.cli.ui import ui

ui(prog_name="python -m aquarium.ui")
