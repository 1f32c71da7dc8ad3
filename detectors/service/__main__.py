"""`python -m detectors.service [flags]`: the same as `driftwarden detectors run [flags]`."""

import sys

from driftwarden.cli import main

main(["detectors", "run", *sys.argv[1:]])
