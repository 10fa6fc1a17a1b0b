"""``python -m swinir_app.train -opt FILE``: see :mod:`swinir_app.train.cli`."""
import sys

from .cli import main

sys.exit(main())
