"""The tasks a benchmark measures: N real cgroups with a sleeping process in each (as root),
or, without root, a fixture tree of regular files laid out like cgroup v1 controllers."""
import os
import shutil
import tempfile

from testing.cgroups import Cgroups
from wca.cgroups import CgroupLayout

# Contents of a fresh, nearly empty v1 cgroup, for the fixture tree.
_FIXTURE_FILES = {
    'cpuacct': {'cpuacct.usage': '123456789\n'},
    'cpu': {'cpu.stat': 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\n'},
    'memory': {
        'memory.usage_in_bytes': '110592\n',
        'memory.max_usage_in_bytes': '1445888\n',
        'memory.limit_in_bytes': '9223372036854771712\n',
        'memory.soft_limit_in_bytes': '9223372036854771712\n',
        'memory.stat': ''.join('%s %d\n' % (k, v) for k, v in [
            ('cache', 0), ('rss', 98304), ('rss_huge', 0), ('shmem', 0), ('mapped_file', 0),
            ('dirty', 0), ('writeback', 0), ('pgpgin', 61), ('pgpgout', 37), ('pgfault', 83),
            ('pgmajfault', 0), ('inactive_anon', 98304), ('active_anon', 0),
            ('inactive_file', 0), ('active_file', 0), ('unevictable', 0),
            ('hierarchical_memory_limit', 9223372036854771712),
            ('total_cache', 0), ('total_rss', 98304), ('total_pgfault', 83),
            ('total_pgmajfault', 0), ('total_inactive_anon', 98304)]),
        'memory.numa_stat': 'total=24 N0=24\nfile=0 N0=0\nanon=24 N0=24\nunevictable=0 N0=0\n'
                            'hierarchical_total=24 N0=24\nhierarchical_file=0 N0=0\n'
                            'hierarchical_anon=24 N0=24\nhierarchical_unevictable=0 N0=0\n',
    },
}


class TaskTree:
    """`paths`: task cgroup paths relative to the mounts; `layout`: what the agent is given
    (None: let it detect the real one); `kind`: 'cgroupfs' or 'fixture'."""
    kind = ''
    paths = []  # relative cgroup paths of the tasks
    layout = None  # a CgroupLayout, or None: the agent detects the real one

    def close(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RealCgroups(TaskTree):
    """N cgroups under /wca-bench-<id> in every measured hierarchy, one `sleep` in each
    (testing.cgroups); everything is removed by close(), also after an error."""
    kind = 'cgroupfs'

    def __init__(self, count: int):
        self.cgroups = Cgroups(prefix='wca-bench')
        try:
            self.paths = [self.cgroups.create('task%04d' % i) for i in range(count)]
        except BaseException:
            self.close()
            raise

    def close(self):
        self.cgroups.cleanup()


class FixtureTree(TaskTree):
    """Without root: N task directories of regular files in a temporary directory, laid out as
    cgroup v1 controllers. Reading them costs less than reading cgroupfs, so the numbers are
    only comparable with other fixture runs."""
    kind = 'fixture'

    def __init__(self, count: int):
        self.root = tempfile.mkdtemp(prefix='wca-bench-')
        v1 = {}
        for controller, files in _FIXTURE_FILES.items():
            mount = v1[controller] = os.path.join(self.root, controller)
            for i in range(count):
                directory = os.path.join(mount, 'bench', 'task%04d' % i)
                os.makedirs(directory)
                for name, text in files.items():
                    with open(os.path.join(directory, name), 'w') as f:
                        f.write(text)
        self.layout = CgroupLayout(v1=v1)
        self.paths = ['/bench/task%04d' % i for i in range(count)]

    def close(self):
        shutil.rmtree(self.root, ignore_errors=True)


def make_tasks(count: int, fixture: bool) -> TaskTree:
    return FixtureTree(count) if fixture or os.geteuid() != 0 else RealCgroups(count)
