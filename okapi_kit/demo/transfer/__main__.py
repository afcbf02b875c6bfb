"""``python -m okapi_kit.demo.transfer DIR``: write the toy project (see make_data)."""

import sys

from .make_data import main

main(sys.argv[1:])
