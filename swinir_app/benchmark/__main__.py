"""``python -m swinir_app.benchmark``."""
import sys

from . import main

sys.exit(main())
