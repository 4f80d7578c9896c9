"""Run the vaebench comparison: ``python run_all.py --help``."""

import os
import sys

# Quiet TensorFlow's start-up logging; set before Keras imports its backend.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
