"""Logging (and later metrics) shared by the worker, drctl and the emulator."""

from observability.logging import configure_logging, get_logger

__all__ = ["configure_logging", "get_logger"]
