"""encore: an application event bus, an abstract key-value storage API and
concurrency helpers -- a modern reimplementation of Enthought's Encore."""

__version__ = "0.9.0.dev0"
