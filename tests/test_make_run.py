"""`make run` from a checkout made under umask 002 (git then makes files 0664 and directories
0775, as a release tarball extracted as root keeps them): the agent refuses a config that group
or others can change, so `make run` takes that permission away first, and says so."""
import os
import stat
import subprocess
import sys

import pytest

from conftest import REPO, require_tool, wca_command

CONFIG = os.path.join('configs', 'wca_config.yml')


def checkout_under_umask(dest, umask=0o002):
    """The files of this working tree that git knows or would add (edits and new files
    included, ignored ones left out), written as git checks files out: 0666 or 0777 less the
    umask, directories 0777 less the umask."""
    files = subprocess.run(['git', '-C', REPO, 'ls-files', '-z', '--cached', '--others',
                            '--exclude-standard'], stdout=subprocess.PIPE,
                           check=True).stdout.decode().split('\0')
    old = os.umask(umask)
    try:
        os.mkdir(dest)
        for name in filter(None, files):
            source = os.path.join(REPO, name)
            if os.path.islink(source) or not os.path.isfile(source):
                continue
            target = os.path.join(dest, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            mode = 0o777 if os.stat(source).st_mode & stat.S_IXUSR else 0o666
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, 'wb') as out, open(source, 'rb') as data:
                out.write(data.read())
    finally:
        os.umask(old)
    return dest


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def checkout(tmp_path):
    require_tool('make', 'apt-get install -y make')
    require_tool('git', 'apt-get install -y git')
    clone = checkout_under_umask(str(tmp_path / 'clone'))
    config = os.path.join(clone, CONFIG)
    # The example config as it is, but with two short iterations instead of running until ^C.
    with open(config) as f:
        text = f.read()
    assert '  interval: 1.0\n' in text
    with open(config, 'w') as f:  # keeps the file's mode
        f.write(text.replace('  interval: 1.0\n', '  interval: 0.1\n  iterations: 2\n'))
    return clone


def make_run(clone):
    """`make run` in the checkout, with the virtualenv running these tests (-o: never rebuilt
    from the checkout's lock files)."""
    venv = sys.prefix
    return subprocess.run(['make', '--no-print-directory', '-C', clone, 'run', 'VENV=' + venv,
                           '-o', os.path.join(venv, '.stamp')],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)


def test_make_run_works_from_a_checkout_made_under_umask_002(checkout):
    config = os.path.join(checkout, CONFIG)
    configs = os.path.dirname(config)
    assert (mode(config), mode(configs), mode(checkout)) == (0o664, 0o775, 0o775)
    # What an operator hit before: the agent refuses the example config as checked out.
    refused = subprocess.run(wca_command('--check-config', '-c', config), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, cwd=checkout)
    assert refused.returncode == 2 and 'writable by group or others' in refused.stderr

    result = make_run(checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    said = [line for line in result.stdout.splitlines() if line.startswith('make run: ')]
    assert said == ['make run: chmod go-w %s (the agent refuses a config that group or others '
                    'can change)' % path for path in (config, configs, checkout)]
    assert (mode(config), mode(configs), mode(checkout)) == (0o644, 0o755, 0o755)
    # It ran the example config: Prometheus text for two iterations on stderr.
    assert result.stderr.count('# TYPE wca_up gauge') == 2, result.stderr[-2000:]

    again = make_run(checkout)  # nothing left to fix: nothing said
    assert again.returncode == 0, again.stderr
    assert 'make run: ' not in again.stdout


def test_make_run_leaves_files_outside_the_checkout_alone(checkout, tmp_path):
    """CONFIG= elsewhere: its mode is the operator's business; the agent says what to fix."""
    outside = tmp_path / 'elsewhere.yml'
    with open(os.path.join(checkout, CONFIG)) as f:
        outside.write_text(f.read())
    os.chmod(str(outside), 0o664)
    venv = sys.prefix
    result = subprocess.run(['make', '--no-print-directory', '-C', checkout, 'run',
                             'VENV=' + venv, '-o', os.path.join(venv, '.stamp'),
                             'CONFIG=' + str(outside)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=120)
    assert result.returncode != 0
    assert 'make run: ' not in result.stdout
    assert mode(str(outside)) == 0o664
    assert 'config is writable by group or others (mode 0664)' in result.stderr
    assert 'fix with: chmod go-w %s' % outside in result.stderr
