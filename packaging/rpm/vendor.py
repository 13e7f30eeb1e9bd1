#!/usr/bin/env python3
"""Makes the RPM's vendor sources from requirements.lock, for several target Pythons.

    vendor.py --lock requirements.lock --version 0.1.0 --python 3.6 --python 3.11 \
        --wheels CACHE_DIR --out SOURCES_DIR

writes two spec sources into SOURCES_DIR:

  wca-vendor-VERSION.tar.gz  wca-vendor-VERSION/wheels/*.whl: every wheel the target Pythons
                             need (manylinux2014 or older, so EL7 can load them), checked
                             against the lock's hashes; plus the lock itself.
  wca-vendor-VERSION.pins    for each target Python, the lock's pins that apply to it (its
                             environment markers evaluated for that Python, not the one running
                             this script), without markers, hashes kept:
                                 [3.6]
                                 certifi==2025.4.26 --hash=sha256:...
                             The spec installs the section of its target and declares
                             Provides: bundled(python3dist(NAME)) = VERSION from it.

Both are byte-for-byte reproducible: entries sorted, owner root, mtime SOURCE_DATE_EPOCH,
gzip without name or time. Wheels are downloaded by pip (hashes required) into CACHE_DIR,
which is reused across runs.
"""
import argparse
import gzip
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile

try:
    from packaging.markers import Marker
except ImportError:  # pip always carries it
    from pip._vendor.packaging.markers import Marker

# Wheels that load with EL7's glibc 2.17: pip takes an explicit --platform literally, so name
# every manylinux tag up to 2.17, old aliases included.
PLATFORMS = ['manylinux_2_%d_x86_64' % minor for minor in range(17, 4, -1)] + [
    'manylinux2014_x86_64', 'manylinux2010_x86_64', 'manylinux1_x86_64']


def read_lock(path):
    """Yields (requirement, marker or None, [hash options]) for each pin of a hashed lock."""
    text = open(path, encoding='utf-8').read()
    text = re.sub(r'\\\n', ' ', text)  # join continuation lines
    for line in text.splitlines():
        line = line.split(' #', 1)[0].strip()
        if not line or line.startswith('#'):
            continue
        hashes = re.findall(r'--hash=\S+', line)
        requirement, _, marker = re.sub(r'\s*--hash=\S+', '', line).partition(';')
        if not hashes:
            raise SystemExit('%s: %r has no --hash: the lock must pin every file' % (path, line))
        if '==' not in requirement:
            raise SystemExit('%s: %r is not an exact pin (NAME==VERSION)' % (path, line))
        yield requirement.strip(), (marker.strip() or None), hashes


def environment(python_version):
    """PEP 508 marker environment of a CPython on x86_64 Linux."""
    return {
        'python_version': python_version,
        'python_full_version': python_version + '.0',
        'implementation_name': 'cpython',
        'implementation_version': python_version + '.0',
        'platform_python_implementation': 'CPython',
        'platform_system': 'Linux',
        'platform_machine': 'x86_64',
        'platform_release': '',
        'platform_version': '',
        'sys_platform': 'linux',
        'os_name': 'posix',
    }


def normalize(name):
    return re.sub(r'[-_.]+', '-', name).lower()


def pins_for(lock, python_version):
    env = environment(python_version)
    pins = {}
    for requirement, marker, hashes in lock:
        if marker and not Marker(marker).evaluate(env):
            continue
        name, version = requirement.split('==', 1)
        name = normalize(name.strip())
        if name in pins:
            raise SystemExit('requirements.lock pins %s twice for Python %s'
                             % (name, python_version))
        pins[name] = (version.strip(), hashes)
    return pins


def download(pins, python_version, wheels):
    with open(os.path.join(wheels, 'requirements-%s.txt' % python_version), 'w') as f:
        for name, (version, hashes) in sorted(pins.items()):
            f.write('%s==%s %s\n' % (name, version, ' '.join(hashes)))
        requirements = f.name
    # The user's pip configuration (index, proxy) applies; the hashes decide what is accepted.
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_NO_INPUT='1')
    platforms = [option for tag in PLATFORMS for option in ('--platform', tag)]
    pip = subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps',
                          '--only-binary', ':all:', '--python-version', python_version,
                          '--implementation', 'cp'] + platforms +
                         ['--require-hashes', '-r', requirements, '--dest', wheels],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True)
    if pip.returncode:
        sys.stderr.write(pip.stdout)
        raise SystemExit('vendor.py: pip download failed for Python %s' % python_version)


def wheel_matches(filename, name, version):
    dist, ver = filename.split('-')[:2]
    return normalize(dist) == name and ver == version


def add_bytes(tar, name, data, mtime):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_tarball(path, top, files, mtime):
    """files: {archive name below top: bytes}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w', format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(top)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
        tar.addfile(info)
        info = tarfile.TarInfo(top + '/wheels')
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
        tar.addfile(info)
        for name in sorted(files):
            add_bytes(tar, top + '/' + name, files[name], mtime)
    with open(path, 'wb') as raw:
        with gzip.GzipFile(filename='', mode='wb', fileobj=raw, mtime=0, compresslevel=9) as gz:
            gz.write(buffer.getvalue())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lock', required=True)
    parser.add_argument('--version', required=True, help="wca's version")
    parser.add_argument('--python', action='append', required=True, metavar='X.Y',
                        help='a target Python version; may be repeated')
    parser.add_argument('--wheels', required=True, help='download cache directory')
    parser.add_argument('--out', required=True, help='directory for the two sources')
    args = parser.parse_args(argv)
    mtime = int(os.environ.get('SOURCE_DATE_EPOCH', '0'))

    lock = list(read_lock(args.lock))
    os.makedirs(args.wheels, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    top = 'wca-vendor-%s' % args.version
    files = {'requirements.lock': open(args.lock, 'rb').read()}
    pins_text = ['# The pins of requirements.lock for each target Python (made by vendor.py).']
    for python_version in args.python:
        pins = pins_for(lock, python_version)
        download(pins, python_version, args.wheels)
        pins_text.append('[%s]' % python_version)
        for name, (version, hashes) in sorted(pins.items()):
            pins_text.append('%s==%s %s' % (name, version, ' '.join(hashes)))
            # The wheels pip picked for this pin and Python: any of them that match the hashes.
            allowed = {h.split(':', 1)[1] for h in hashes}
            found = [f for f in os.listdir(args.wheels)
                     if f.endswith('.whl') and wheel_matches(f, name, version)]
            if not found:
                raise SystemExit('no wheel of %s %s for Python %s' % (name, version,
                                                                      python_version))
            for f in found:
                data = open(os.path.join(args.wheels, f), 'rb').read()
                if hashlib.sha256(data).hexdigest() not in allowed:
                    raise SystemExit('%s does not match the hashes in %s' % (f, args.lock))
                files['wheels/' + f] = data
    write_tarball(os.path.join(args.out, top + '.tar.gz'), top, files, mtime)
    with open(os.path.join(args.out, top + '.pins'), 'w') as f:
        f.write('\n'.join(pins_text) + '\n')
    print('vendor.py: %s.tar.gz: %d wheels for Python %s' % (
        top, sum(1 for n in files if n.startswith('wheels/')), ', '.join(args.python)))


if __name__ == '__main__':
    main()
