"""Text-terminal displays driven by events.

:class:`~encore.terminal.progress_display.ProgressDisplay` listens to the
progress events of :mod:`encore.events.progress_events` and draws a progress
bar (or a spinner) for every operation.  Import the public names from
:mod:`encore.terminal.api`.
"""
