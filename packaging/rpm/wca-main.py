# /usr/lib64/wca/__main__.py: run by /usr/bin/wca as `python3 -s -E -B /usr/lib64/wca`, which
# puts this directory (the agent and its pinned dependencies) first on sys.path. -E ignores
# PYTHONPATH: plugins for `-r module:Class` go in /etc/wca/plugins, which wca.plugindir
# appends to sys.path, after everything else, once it has checked that only root can change
# what is in it.
import sys

from wca.plugindir import main

sys.exit(main())
