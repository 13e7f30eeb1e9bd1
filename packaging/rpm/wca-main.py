# /usr/lib64/wca/__main__.py: run by /usr/bin/wca as `python3 -s -E -B /usr/lib64/wca`, which
# puts this directory (the agent and its pinned dependencies) first on sys.path. -E ignores
# PYTHONPATH: plugins for `-r module:Class` go in /etc/wca/plugins, which wca.plugindir
# serves through its own finder, after everything else on sys.path, once it has checked that
# only root (or the agent's user) can change what is in it; modules are compiled from the
# bytes read through the checked descriptors.
import sys

from wca.plugindir import main

sys.exit(main())
