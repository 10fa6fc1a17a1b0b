"""The web app: :mod:`.service` (no gradio), :mod:`.jobs` (cancel tokens, budgets, the fair device queue),
:mod:`.page` (the Gradio page and API), :mod:`.cli` (``python app.py``).

Nothing else in the package imports it.
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home, works offline
