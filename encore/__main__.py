"""Run the ``encore`` command: ``python -m encore ...``."""
import sys

from encore.cli import main

sys.exit(main())
