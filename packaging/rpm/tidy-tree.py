#!/usr/bin/env python3
"""Tidies the private tree pip installed (wca.spec's %install runs it): tidy-tree.py DIR

- The console scripts pip wrote to DIR/bin go (their "#!" names the build host's Python; the
  agent has its own launcher), and so do their rows in the records.
- A module's "#!" line is dropped when the file is not executable (requests/certs.py,
  kafka's benchmarks): these files are imported, never run, and a shebang on a
  non-executable file is an error for rpmlint.
- Modes: directories 0755, extension modules (.so) 0755, everything else 0644, whatever the
  wheels or the umask said.
- Each *.dist-info/RECORD gets the new sha256 and size of the files changed above, so the
  tree stays consistent with its metadata (pip check, importlib.metadata).
"""
import base64
import csv
import hashlib
import io
import os
import shutil
import stat
import sys


def record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=')
    return 'sha256=' + digest.decode('ascii')


def tidy(top):
    shutil.rmtree(os.path.join(top, 'bin'), ignore_errors=True)
    changed = set()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        os.chmod(dirpath, 0o755)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            executable = bool(os.stat(path).st_mode & stat.S_IXUSR)
            if name.endswith('.py') and not executable:
                with open(path, 'rb') as f:
                    data = f.read()
                if data.startswith(b'#!'):
                    newline = data.find(b'\n')
                    with open(path, 'wb') as f:
                        f.write(b'' if newline < 0 else data[newline + 1:])
                    changed.add(os.path.relpath(path, top))
            os.chmod(path, 0o755 if name.endswith('.so') else 0o644)
    for entry in sorted(os.listdir(top)):
        record = os.path.join(top, entry, 'RECORD')
        if not entry.endswith('.dist-info') or not os.path.isfile(record):
            continue
        with open(record, newline='', encoding='utf-8') as f:
            rows = list(csv.reader(f))
        gone = [row for row in rows if row and (
            os.path.normpath(row[0]).startswith('..') or
            not os.path.exists(os.path.join(top, row[0])))]
        if not gone and not any(row and row[0] in changed for row in rows):
            continue
        out = io.StringIO()
        writer = csv.writer(out)  # as pip writes it: \r\n line ends
        for row in rows:
            if row in gone:
                continue
            if row and row[0] in changed:
                with open(os.path.join(top, row[0]), 'rb') as f:
                    data = f.read()
                row = [row[0], record_hash(data), str(len(data))]
            writer.writerow(row)
        with open(record, 'w', newline='', encoding='utf-8') as f:
            f.write(out.getvalue())
    for path in sorted(changed):
        print('tidy-tree.py: dropped the #! line of %s' % path)


if __name__ == '__main__':
    tidy(sys.argv[1])
