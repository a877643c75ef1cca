"""``python -m taskdemo``: the notebook's sets and the C pool's, in a terminal.

See ``taskdemo.demo`` for the sets; ``python -m taskdemo --help`` for the
options.  Exits 0, or 2 with a message for bad arguments.
"""
import sys

from .demo import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m taskdemo"))
