"""`python -m engines ...`, the same as the `engines` command."""
import sys

from tracker.engines.cli import main

sys.exit(main())
