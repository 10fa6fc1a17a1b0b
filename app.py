"""The SwinIR web upscaler.

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--max-pixels N] [--max-file-size 50mb] [--model SPEC]

The page is built in swinir_app/webui.py; ``python app.py --help`` lists every option.
"""
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: works offline

from swinir_app.webui import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
