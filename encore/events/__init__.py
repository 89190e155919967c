"""An application-wide event system: event classes, managers and listeners.

The public names are collected in :mod:`encore.events.api`.
"""
