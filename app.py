"""The SwinIR web upscaler.

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--max-pixels N] [--max-file-size 50mb] [--model SPEC]

The app is swinir_app/webui/ (service, page, cli); ``python app.py --help`` lists every option.
"""
import sys

from swinir_app.webui.cli import main

if __name__ == "__main__":
    sys.exit(main())
