"""`python -m logtide` runs the `logtide` command (handy where the console script is not on PATH)."""

import sys

from logtide.cli import main

sys.exit(main())
