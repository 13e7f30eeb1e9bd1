# /usr/lib/wca/__main__.py: run by /usr/bin/wca as `python3 -s -E -B /usr/lib/wca`, which puts
# this directory (the agent and its pinned dependencies) first on sys.path.
import sys

from wca.main import main

sys.exit(main())
