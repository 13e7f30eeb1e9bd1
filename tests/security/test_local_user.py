"""A local user (uid 65534 here, made with setpriv) against the agent, which runs with
CAP_DAC_OVERRIDE and CAP_SETUID: they must not get their code run by it (the plugin directory,
docs/security.md "Local users"), or steer its writes (a shared textfile directory). That
they cannot read the config's secrets is in test_config_author.py (the author's file mode).

Each test makes the hostile files as that user, runs the agent's own check, import or store
for real, and asserts a refusal that says why, and a marker file the hostile code would have
written, absent.
"""
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from conftest import NOBODY, require_root, unprivileged
from test_plugindir import installed_wca

from wca import plugindir
from wca.storage import FailedDeliveryException, LogStorage
from wca.metrics import Metric, MetricType


@pytest.fixture
def node():
    """A 0755 root directory with: plugins (0755, the agent's plugin directory), vendor (0755,
    root's code elsewhere) and public (1777, like /tmp: the local user's)."""
    require_root()
    base = tempfile.mkdtemp(prefix='wca-test-actor-')
    os.chmod(base, 0o755)
    paths = {'base': base}
    for name, mode in (('plugins', 0o755), ('vendor', 0o755), ('public', 0o1777)):
        paths[name] = os.path.join(base, name)
        os.mkdir(paths[name])
        os.chmod(paths[name], mode)
    paths['marker'] = os.path.join(paths['public'], 'hostile-code-ran')
    try:
        yield paths
    finally:
        shutil.rmtree(base)


def as_user(*args):
    result = unprivileged(list(args))
    assert result.returncode == 0, result.stderr
    return result


def user_can_read(path):
    """Whether the user can read the file: plain setpriv, without the CAP_DAC_READ_SEARCH
    that `unprivileged` adds when the interpreter is out of the user's reach."""
    result = subprocess.run(['setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY,
                             '--clear-groups', 'cat', path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    return result.stdout if result.returncode == 0 else None


def write_as_user(path, text):
    as_user('sh', '-c', 'printf "%s" "$1" > "$2"', 'sh', text, path)


def hostile(marker):
    return 'open(%r, "w").write("ran")\n\n\nclass Hostile:\n    pass\n' % marker


def refused_by_the_agent(node, register):
    """The installed agent, told to load `register`: exit 2 with one line, and no marker."""
    result = installed_wca(node['plugins'], '--check-config', '-c', config(node),
                           '-r', register, cwd=node['base'])
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and 'Traceback' not in result.stderr
    assert not os.path.exists(node['marker']), 'the hostile code ran'
    return result.stderr


def config(node):
    path = os.path.join(node['base'], 'wca.yml')
    with open(path, 'w') as f:
        f.write('runner: !MeasurementRunner\n  node: !StaticNode\n    tasks: []\n')
    os.chmod(path, 0o644)
    return path


# --- plugins: only code that root (or the agent's user) controls runs ------------------------

def test_a_linked_package_with_a_module_others_can_write_is_refused(node):
    """The operator links a package from elsewhere whose module is 0666; the user writes into
    it. The old check looked at the linked directory, not at what is in it."""
    package = os.path.join(node['vendor'], 'vendored')
    os.mkdir(package)
    os.chmod(package, 0o755)
    open(os.path.join(package, '__init__.py'), 'w').close()
    module = os.path.join(package, 'mod.py')
    open(module, 'w').close()
    os.chmod(module, 0o666)
    os.symlink(package, os.path.join(node['plugins'], 'vendored'))
    write_as_user(module, hostile(node['marker']))
    stderr = refused_by_the_agent(node, 'vendored.mod:Hostile')
    assert stderr == ('wca: error: plugin directory %s refused: %s is writable by group or others '
                      '(mode 0666): others could make the agent run their code; fix with: chmod '
                      'go-w %s\n' % (node['plugins'], module, module))


def test_a_dangling_link_is_refused_before_and_after_its_target_appears(node):
    target = os.path.join(node['public'], 'later.py')
    os.symlink(target, os.path.join(node['plugins'], 'later.py'))
    assert plugindir.unsafe_reason(node['plugins']) == (
        '%s does not exist, and a symbolic link in the plugin directory leads to it: whoever '
        'creates it could make the agent run their code; remove the link' % target)
    write_as_user(target, hostile(node['marker']))  # the user creates it
    stderr = refused_by_the_agent(node, 'later:Hostile')
    assert 'owned by uid %d, neither root nor this user' % NOBODY in stderr


def test_a_link_that_leads_through_a_link_of_the_user_is_refused(node):
    """plugins/hop.py -> public/hop -> vendor/good.py: where it ends is root's, but the user
    owns the link on the way and can point it at their own file whenever they like."""
    good = os.path.join(node['vendor'], 'good.py')
    with open(good, 'w') as f:
        f.write('class Hostile:\n    pass\n')
    hop = os.path.join(node['public'], 'hop')
    as_user('ln', '-s', good, hop)
    os.symlink(hop, os.path.join(node['plugins'], 'hop.py'))
    stderr = refused_by_the_agent(node, 'hop:Hostile')
    assert ('symbolic link %s is owned by uid %d, neither root nor this user (uid 0): its owner '
            'could point it at their code; fix with: chown -h root %s' % (hop, NOBODY, hop)
            in stderr)


@pytest.fixture
def importing(node):
    """The plugin directory added as the installed agent does; sys.path, sys.meta_path and the
    modules imported from it restored afterwards."""
    meta_path, modules = list(sys.meta_path), set(sys.modules)
    yield node
    sys.meta_path[:] = meta_path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def test_a_module_swapped_after_the_check_never_runs(importing):
    """The directory passes the start check; then the module is replaced by the user's file
    (the rename stands for whatever could swap it): the import checks the descriptor it reads
    the code from, and refuses."""
    node = importing
    module = os.path.join(node['plugins'], 'swapped.py')
    with open(module, 'w') as f:
        f.write('class Hostile:\n    pass\n')
    assert plugindir.add_plugin_directory(node['plugins']) is None  # checked: root's, 0644
    planted = os.path.join(node['public'], 'planted.py')
    write_as_user(planted, hostile(node['marker']))
    os.rename(planted, module)
    with pytest.raises(ImportError) as raised:
        __import__('swapped')
    assert str(raised.value) == (
        'plugin %s refused: %s is owned by uid %d, neither root nor this user (uid 0): its owner '
        'could make the agent run their code; fix with: chown root %s' % (
            module, module, NOBODY, module))
    assert not os.path.exists(node['marker'])


def test_a_package_directory_swapped_for_a_link_after_the_check_is_refused(importing):
    """After the check, the package's directory becomes a link to the user's directory: the
    import opens each directory on the way without following links, and checks each."""
    node = importing
    package = os.path.join(node['plugins'], 'pkg')
    os.mkdir(package)
    os.chmod(package, 0o755)
    open(os.path.join(package, '__init__.py'), 'w').close()
    assert plugindir.add_plugin_directory(node['plugins']) is None
    theirs = os.path.join(node['public'], 'theirs')
    as_user('mkdir', theirs)
    write_as_user(os.path.join(theirs, '__init__.py'), hostile(node['marker']))
    shutil.rmtree(package)
    os.symlink(theirs, package)
    with pytest.raises(ImportError, match='plugin %s refused: .*owned by uid %d' % (
            os.path.join(package, '__init__.py'), NOBODY)):
        __import__('pkg')
    assert not os.path.exists(node['marker'])


# --- a shared textfile directory: nothing planted at a name the agent uses is followed ------

def test_names_planted_in_a_shared_textfile_directory_are_not_used(node):
    """node_exporter's textfile directory shared with others (1777). At the name the temporary
    file used to have (<file>.<pid>.tmp), the user plants a link to a root file, and a file of
    their own: the agent's store follows neither, and the file it publishes is its own."""
    victim = os.path.join(node['vendor'], 'passwd')
    with open(victim, 'w') as f:
        f.write('root:x:0:0::/root:/bin/sh\n')
    textfiles = node['public']
    path = os.path.join(textfiles, 'wca.prom')
    predictable = '%s.%d.tmp' % (path, os.getpid())
    as_user('ln', '-s', victim, predictable)
    storage = LogStorage(output_filename=path, overwrite=True)
    storage.store([Metric('wca_up', 1, {}, MetricType.GAUGE, 'Up.')])
    storage.store([Metric('wca_up', 1, {}, MetricType.GAUGE, 'Up.')])
    with open(victim) as f:
        assert f.read() == 'root:x:0:0::/root:/bin/sh\n'
    assert os.path.islink(predictable)
    os.unlink(predictable)
    write_as_user(predictable, 'theirs\n')
    storage.store([Metric('wca_up', 1, {}, MetricType.GAUGE, 'Up.')])
    with open(predictable) as f:
        assert f.read() == 'theirs\n'  # not truncated, not renamed into place
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o644
    with open(path) as f:
        assert 'wca_up 1' in f.read()
    assert sorted(os.listdir(textfiles)) == sorted(['wca.prom', os.path.basename(predictable)])


def test_a_link_planted_at_the_appended_file_is_not_followed(node):
    """Appending (overwrite: false) to a shared directory: the user links the file's name to a
    root file before the agent first writes. The store fails, says why, and the root file is
    untouched; a link root made in root's directory (like /dev/stdout) is still followed."""
    victim = os.path.join(node['vendor'], 'passwd')
    with open(victim, 'w') as f:
        f.write('root:x:0:0::/root:/bin/sh\n')
    path = os.path.join(node['public'], 'wca.log')
    as_user('ln', '-s', victim, path)
    storage = LogStorage(output_filename=path)
    with pytest.raises(FailedDeliveryException) as raised:
        storage.store([Metric('wca_up', 1, {}, MetricType.GAUGE, 'Up.')])
    assert str(raised.value) == (
        'cannot write %s: it is a symbolic link of uid %d: not followed (others could have '
        'pointed it at any file)' % (path, NOBODY))
    with open(victim) as f:
        assert f.read() == 'root:x:0:0::/root:/bin/sh\n'
    assert storage.dropped_count() == 1
    own = os.path.join(node['vendor'], 'wca.log')
    os.symlink(victim, own)
    LogStorage(output_filename=own).store([Metric('wca_up', 1, {}, MetricType.GAUGE, 'Up.')])
    with open(victim) as f:
        assert 'wca_up 1' in f.read()
