"""The fault-injection soak (`make soak`; deselected from `make test`): see soak_run.py and
docs/reliability.md. Prints the figures as a table and writes them as JSON (SOAK_REPORT, by
default soak-results/soak.json, with the agent's stderr beside it)."""
import json
import os

import pytest

from conftest import require_root, require_tool
from soak_run import Settings, Soak, table


@pytest.mark.soak
def test_soak_with_faults_keeps_every_iteration_and_flat_resources():
    require_root()
    require_tool('openssl', 'apt-get install -y openssl')
    soak = Soak(Settings(), require_tool('tansu', 'tools/install-test-tools'))
    report = soak.run()
    os.makedirs(os.path.dirname(os.path.abspath(soak.s.report)), exist_ok=True)
    with open(soak.s.report, 'w') as f:
        json.dump(report, f, indent=2, sort_keys=True)
    with open(os.path.splitext(soak.s.report)[0] + '.agent.log', 'w') as f:
        f.write(soak.stderr_text)
    print('\n' + table(report) + '\nreport: %s' % soak.s.report)
    assert report['passed'], '\n'.join(report['failures'])
