"""`python -m dream_pipeline.cli`: the same as the `dream` command."""

import sys

from dream_pipeline.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
