"""Runs the otdpi command line as `python -m otdpi`."""

import sys

from otdpi.cli import main

sys.exit(main())
