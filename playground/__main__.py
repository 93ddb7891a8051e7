"""``python -m playground``: load .env, then run the CLI."""

import sys

from dotenv import load_dotenv

from playground.cli import main

if __name__ == "__main__":
    load_dotenv()
    sys.exit(main())
