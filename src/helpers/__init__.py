"""Single Customer View: helpers shared by the stage notebooks (see DESIGN.md for the flow)."""

__version__ = "0.1.0"
