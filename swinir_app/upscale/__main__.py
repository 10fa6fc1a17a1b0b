"""``python -m swinir_app.upscale``."""
import sys

from . import main

sys.exit(main())
