"""The web app, its modules from the bottom up (none of them imports one above it; only :mod:`.page`
imports gradio):

- :mod:`.jobs`: cancel tokens, budgets, the fair device queue, one-line errors;
- :mod:`.settings`: the operator's settings and limits, one run's settings;
- :mod:`.catalogue`: which models are offered and allowed (data only);
- :mod:`.storage`: temporary files and their quota; :mod:`.zips`: batch uploads, zip files checked;
- :mod:`.service`: :class:`~.service.WebApp`, one image and one video on models kept loaded;
- :mod:`.batch`: a batch into one zip, as functions over the service;
- :mod:`.middleware`: the HTTP body limit and upload quota;
- :mod:`.page`: the Gradio page and API, and its Markdown; :mod:`.cli`: ``python app.py``.

Nothing else in the package imports it.
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home, works offline
