#!/bin/sh
# wca: runs the Workload Collocation Agent from its private tree, @LIBDIR@, with the
# interpreter the package was built for. -s and -E keep the user's site-packages and PYTHON*
# variables out; -B never writes .pyc files into the package's tree. Running the directory
# (its __main__.py) puts it first on sys.path, ahead of the system's packages. With PYTHONPATH
# ignored, `-r module:Class` finds plugin modules in /etc/wca/plugins (see __main__.py).
@SCL_ENABLE@
exec @PYTHON@ -s -E -B @LIBDIR@ "$@"
