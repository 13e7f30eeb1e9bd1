"""A plugin whose import takes a while, with a marker file saying it started (for signal tests)."""
import os
import time

with open(os.environ['WCA_TEST_IMPORT_MARKER'], 'w') as marker:
    marker.write('importing')
time.sleep(30)


class Slow:
    pass
