"""``python -m seglib``: the same as the ``seglib`` command (see :mod:`seglib.cli`)."""
import sys

from .cli import main

sys.exit(main())
