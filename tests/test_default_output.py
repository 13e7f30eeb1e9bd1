"""What `make run` prints, as an operator checks it: the default config's output parses with
`promtool check metrics`, and every name its linter points out is one the README lists as an
inherited name (kept for the original's dashboards), so the docs say what the output is."""
import os
import re
import subprocess

import pytest

from conftest import REPO, promtool_check, wca_command, write_config

pytestmark = pytest.mark.root


def readme_linted_names():
    """The names in the README paragraph about `promtool check metrics`'s linter."""
    with open(os.path.join(REPO, 'README.md')) as f:
        text = f.read()
    start = text.index('The output passes `promtool check metrics`')
    paragraph = text[start:text.index('\n\n', start)]
    return set(re.findall(r'`([a-z_]+)`', paragraph))


def last_iteration(stderr: bytes) -> bytes:
    text = b'\n'.join(line for line in stderr.splitlines() if not line[:2].isdigit())
    first_family = text.split(b'\n', 1)[0]
    assert first_family.startswith(b'# HELP '), text[:200]
    return first_family + text.rsplit(first_family, 1)[1] + b'\n'


def test_the_default_configs_lint_findings_are_the_inherited_names_the_readme_lists(
        tmp_path, cgroups):
    cgroups.create('busy')  # a task in every hierarchy, so task_* counters are there
    with open(os.path.join(REPO, 'configs', 'wca_config.yml')) as f:
        text = f.read().replace('  interval: 1.0\n', '  interval: 0.2\n  iterations: 2\n')
    config = write_config(tmp_path / 'wca_config.yml', text)
    result = subprocess.run(wca_command('--config', config, '--root'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    output = promtool_check(last_iteration(result.stderr))  # no parse error, legacy lint only
    flagged = {line.split(' ', 1)[0] for line in output.splitlines()}
    assert 'task_cpu_usage_seconds' in flagged and 'platform_vmstat_pgfaults' in flagged, output
    documented = readme_linted_names()
    assert flagged <= documented, 'flagged but not in the README: %s' % sorted(flagged - documented)
