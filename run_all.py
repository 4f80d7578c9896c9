"""Run the vaebench comparison: ``python run_all.py --help``; ``python run_all.py fetch``
downloads the datasets. The same as the installed ``vaebench`` command."""

import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
