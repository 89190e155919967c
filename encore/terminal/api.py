"""The public API of :mod:`encore.terminal`.

Import from here: ``from encore.terminal.api import ProgressDisplay``.
"""
from .progress_display import ProgressDisplay, ProgressWriter, SpinWriter, write_static

__all__ = ["ProgressDisplay", "ProgressWriter", "SpinWriter", "write_static"]
