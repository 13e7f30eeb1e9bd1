"""The installed agent's plugin directory (wca.plugindir): `-r` finds modules there without
PYTHONPATH, after everything else on sys.path, and only when no one but root (or the agent's
user) can change what is in it."""
import os
import subprocess
import sys

import pytest

from conftest import REPO, require_root, write_config

from wca import plugindir

PLUGIN = '''\
from wca.storage.base import Storage


class PluginDirStorage(Storage):
    def __init__(self, path: str):
        self.path = path

    def store(self, metrics):
        with open(self.path, 'a') as f:
            f.write('%d\\n' % len(metrics))
'''
# A module with the name of one the agent needs: it must never be imported.
SHADOW = 'raise ImportError("the plugin directory shadowed a module the agent imports")\n'


@pytest.fixture
def plugins(tmp_path):
    directory = tmp_path / 'plugins'
    directory.mkdir(mode=0o755)
    os.chmod(str(directory), 0o755)
    (directory / 'wca_test_plugindir.py').write_text(PLUGIN)
    return directory


def installed_wca(directory, *args, cwd=None):
    """The agent as an installed launcher runs it: isolated from PYTHONPATH and the user's
    site-packages (python -I), the agent's own tree first on sys.path, through
    wca.plugindir.main() with this plugin directory."""
    code = ('import sys; sys.path.insert(0, %r); from wca.plugindir import main; '
            'main(sys.argv[1:], directory=%r)' % (REPO, str(directory)))
    env = dict(os.environ, PYTHONPATH=str(directory))  # ignored, as under the RPM's -E
    return subprocess.run([sys.executable, '-I', '-B', '-c', code] + list(args), env=env,
                          cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)


def storage_config(tmp_path, output):
    return write_config(tmp_path / 'wca.yml', '''\
runner: !MeasurementRunner
  node: !StaticNode
    tasks: []
  metrics_storage: !PluginDirStorage
    path: %s
  iterations: 2
  interval: 0.01
''' % output)


def test_a_plugin_in_the_directory_runs_without_pythonpath(tmp_path, plugins):
    output = tmp_path / 'stored'
    config = storage_config(tmp_path, output)
    result = installed_wca(plugins, '-c', config, '-r', 'wca_test_plugindir:PluginDirStorage',
                           '--root', cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'warning' not in result.stderr and 'error' not in result.stderr, result.stderr
    counts = output.read_text().split()
    assert len(counts) == 2 and all(int(n) > 0 for n in counts)


def test_without_the_directory_the_plugin_is_not_found(tmp_path, plugins):
    """The launcher really ignores PYTHONPATH: the directory is what makes -r work."""
    config = storage_config(tmp_path, tmp_path / 'stored')
    result = installed_wca(tmp_path / 'none', '--check-config', '-c', config,
                           '-r', 'wca_test_plugindir:PluginDirStorage', cwd=str(tmp_path))
    assert result.returncode == 2
    assert "cannot import module 'wca_test_plugindir'" in result.stderr


def test_the_directory_comes_last_and_only_its_finder_loads_from_it(plugins):
    """Not on sys.path (the standard finder would re-open files by path and trust
    __pycache__): its finder comes last on sys.meta_path, once however often it is added."""
    sys_path, meta_path = list(sys.path), list(sys.meta_path)
    try:
        assert plugindir.add_plugin_directory(str(plugins)) is None
        assert plugindir.add_plugin_directory(str(plugins)) is None  # once
        assert sys.path == sys_path
        added = [f for f in sys.meta_path if f not in meta_path]
        assert len(added) == 2 and sys.meta_path[-1] is added[1]
        assert sys.meta_path[0] is added[0]  # for the submodules of plugin packages only
        module = __import__('wca_test_plugindir')
        assert module.__file__ == str(plugins / 'wca_test_plugindir.py')
        assert isinstance(module.__loader__, plugindir.PluginLoader)
    finally:
        sys.path[:], sys.meta_path[:] = sys_path, meta_path
        sys.modules.pop('wca_test_plugindir', None)


def test_a_missing_directory_is_left_out(tmp_path):
    sys_path = list(sys.path)
    assert plugindir.add_plugin_directory(str(tmp_path / 'absent')) is None
    assert sys.path == sys_path


def test_a_plugin_cannot_shadow_what_the_agent_imports(tmp_path, plugins):
    """yaml.py and json.py in the directory: the agent still loads its YAML with the bundled
    PyYAML, and says which plugin files -r will never load."""
    (plugins / 'yaml.py').write_text(SHADOW)
    (plugins / 'json.py').write_text(SHADOW)
    (plugins / 'sys.py').write_text(SHADOW)
    config = storage_config(tmp_path, tmp_path / 'stored')
    result = installed_wca(plugins, '--check-config', '-c', config,
                           '-r', 'wca_test_plugindir:PluginDirStorage', cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.splitlines()
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith('wca: warning: %s is not loaded by -r: its name is taken by '
                                  % (plugins / 'json.py'))
    assert 'json' in warnings[0] and warnings[0].endswith('; rename it')
    assert warnings[1] == ('wca: warning: %s is not loaded by -r: its name is taken by the '
                           'built-in module sys; rename it' % (plugins / 'sys.py'))
    assert 'yaml' in warnings[2].split('taken by ')[1]


def refused(directory, tmp_path):
    config = storage_config(tmp_path, tmp_path / 'stored')
    result = installed_wca(directory, '--check-config', '-c', config, cwd=str(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr
    assert lines[0].startswith('wca: error: plugin directory %s refused: ' % directory)
    return lines[0]


def test_refused_with_one_line_and_exit_2(tmp_path, plugins):
    os.chmod(str(plugins), 0o775)
    assert refused(plugins, tmp_path).endswith(
        '%s is writable by group or others (mode 0775): others could make the agent run their '
        'code; fix with: chmod go-w %s' % (plugins, plugins))


@pytest.mark.parametrize('mode', [0o775, 0o757, 0o777, 0o1777])
def test_a_directory_others_can_write_is_refused(plugins, mode):
    os.chmod(str(plugins), mode)
    assert plugindir.unsafe_reason(str(plugins)) == (
        '%s is writable by group or others (mode %04o): others could make the agent run their '
        'code; fix with: chmod go-w %s' % (plugins, mode, plugins))


def test_a_module_others_can_write_is_refused(plugins):
    package = plugins / 'pkg'
    package.mkdir()
    os.chmod(str(package), 0o755)
    module = package / '__init__.py'
    module.write_text('')
    os.chmod(str(module), 0o664)
    assert plugindir.unsafe_reason(str(plugins)).endswith('fix with: chmod go-w %s' % module)
    os.chmod(str(module), 0o644)
    os.chmod(str(package), 0o775)
    assert plugindir.unsafe_reason(str(plugins)).endswith('fix with: chmod go-w %s' % package)
    os.chmod(str(package), 0o755)
    assert plugindir.unsafe_reason(str(plugins)) is None


def test_a_directory_above_others_can_write_is_refused_unless_sticky(tmp_path):
    above = tmp_path / 'shared'
    above.mkdir()
    directory = above / 'plugins'
    directory.mkdir()
    os.chmod(str(directory), 0o755)
    os.chmod(str(above), 0o777)
    assert plugindir.unsafe_reason(str(directory)) == (
        '%s is writable by group or others (mode 0777): others could make the agent run their '
        'code; fix with: chmod go-w %s' % (above, above))
    os.chmod(str(above), 0o1777)  # like /tmp: no one can replace another's entries
    assert plugindir.unsafe_reason(str(directory)) is None


def test_a_symbolic_link_to_a_file_others_can_write_is_refused(tmp_path, plugins):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    target = elsewhere / 'linked.py'
    target.write_text('')
    os.chmod(str(target), 0o666)
    os.symlink(str(target), str(plugins / 'linked.py'))
    assert plugindir.unsafe_reason(str(plugins)).endswith('chmod go-w %s' % target)
    os.chmod(str(target), 0o644)
    assert plugindir.unsafe_reason(str(plugins)) is None
    os.chmod(str(elsewhere), 0o777)
    assert plugindir.unsafe_reason(str(plugins)).endswith('chmod go-w %s' % elsewhere)


def test_files_of_another_user_are_refused(plugins):
    require_root()
    module = plugins / 'wca_test_plugindir.py'
    os.chown(str(module), 65534, 65534)
    assert plugindir.unsafe_reason(str(plugins)) == (
        '%s is owned by uid 65534, neither root nor this user (uid 0): its owner could make the '
        'agent run their code; fix with: chown root %s' % (module, module))
    os.chown(str(module), 0, 0)
    os.chown(str(plugins), 65534, 0)
    assert plugindir.unsafe_reason(str(plugins)).endswith('chown root %s' % plugins)


def test_not_a_directory_is_refused(tmp_path):
    path = tmp_path / 'plugins'
    path.write_text('')
    assert plugindir.unsafe_reason(str(path)) == '%s is not a directory' % path


def test_bytecode_in_pycache_is_never_loaded(tmp_path, plugins):
    """A stale or planted __pycache__/cached.*.pyc whose header matches the source's time and
    size: the standard loader would run it; the plugin loader compiles the source."""
    import py_compile
    import importlib.util
    marker = tmp_path / 'bytecode-ran'
    module = plugins / 'wca_test_cached.py'
    hostile = 'open(%r, "w").write("ran")\nclass Cached: pass\n' % str(marker)
    benign = 'class Cached: pass\n'
    benign += '#' * (len(hostile) - len(benign) - 1) + '\n'  # the same size
    module.write_text(hostile)
    os.utime(str(module), (1700000000, 1700000000))
    py_compile.compile(str(module), cfile=importlib.util.cache_from_source(str(module)),
                       doraise=True)
    module.write_text(benign)
    os.utime(str(module), (1700000000, 1700000000))  # the same time: the .pyc looks fresh
    config = storage_config(tmp_path, tmp_path / 'stored')
    result = installed_wca(plugins, '--check-config', '-c', config,
                           '-r', 'wca_test_cached:Cached',
                           '-r', 'wca_test_plugindir:PluginDirStorage', cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), 'the bytecode ran instead of the source'


def test_what_runs_is_the_bytes_that_were_checked(plugins):
    """The finder reads (and checks) the module once; changing the file afterwards changes
    nothing of what runs: no second open by path."""
    import importlib.util
    module = plugins / 'wca_test_once.py'
    module.write_text('VALUE = "checked"\n')
    finder = plugindir.PluginFinder(str(plugins), submodules=False)
    spec = finder.find_spec('wca_test_once')
    inode = os.stat(str(module)).st_ino
    replacement = plugins / 'replacement.py'
    replacement.write_text('VALUE = "swapped"\n')
    os.rename(str(replacement), str(module))
    assert os.stat(str(module)).st_ino != inode
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    assert loaded.VALUE == 'checked'
    assert loaded.__file__ == str(module) and loaded.__cached__ is None


def test_a_package_and_its_submodules_load_through_the_plugin_finder(tmp_path, plugins):
    """`-r package.module:Class`: the submodule is found by the plugin finder too (checked the
    same way), never by the standard one."""
    package = plugins / 'wca_test_package'
    package.mkdir()
    os.chmod(str(package), 0o755)
    (package / '__init__.py').write_text('')
    (package / 'storage.py').write_text(
        PLUGIN + '\nassert isinstance(__loader__, __import__("wca.plugindir").plugindir.'
        'PluginLoader)\n')
    output = tmp_path / 'stored'
    config = storage_config(tmp_path, output)
    result = installed_wca(plugins, '-c', config, '-r',
                           'wca_test_package.storage:PluginDirStorage', '--root',
                           cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert len(output.read_text().split()) == 2
