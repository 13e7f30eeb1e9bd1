"""The command line: options, logging, config, privileges, signals, exit codes.

Exit status: 0 done or stopped by SIGTERM/SIGINT; 1 refused to run (root, privileges) or the
runner failed; 2 a configuration or usage error (one line on stderr, never a traceback).
"""
import argparse
import logging
import os
import signal
import sys

from wca import __version__, config, logger, security
from wca.components import register_components
from wca.runners.base import Runner

log = logging.getLogger('wca.main')

EXIT_OK, EXIT_REFUSED, EXIT_CONFIG = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write('wca: error: %s\n' % message)
        sys.exit(EXIT_CONFIG)


def parse_args(argv):
    parser = _Parser(prog='wca', description='Workload Collocation Agent: measures the tasks of '
                     'this node and runs a detector or allocator on them.')
    parser.add_argument('-c', '--config', help='YAML config file', required=False)
    parser.add_argument('-r', '--register', action='append', default=[], metavar='MODULE:CLASS',
                        help='register a component class for the config ([package.]module:Class);'
                             ' may be repeated')
    parser.add_argument('-l', '--log', '--level', action='append', default=[], dest='levels',
                        metavar='[MODULE:]LEVEL',
                        help='log level of the agent (debug, info, ...) or of one module '
                             '(module:level); may be repeated')
    parser.add_argument('-0', '--root', action='store_true',
                        help='allow running as root (not recommended)')
    parser.add_argument('--check-config', action='store_true',
                        help='check the config and exit: 0 valid, 2 invalid')
    parser.add_argument('--version', action='version', version='wca ' + __version__)
    args = parser.parse_args(argv)
    if not args.config:
        parser.error('the config file is required: wca -c CONFIG')
    return args


def fail(message, status):
    sys.stderr.write('wca: %s\n' % message)
    return status


def main(argv=None):
    sys.exit(run(sys.argv[1:] if argv is None else argv))


def _interrupted(signum, frame):
    """Before the runner starts, a signal ends the process quietly with 128 + signal number
    (an interrupted --check-config must not look like a valid config)."""
    raise SystemExit(128 + signum)


def run(argv) -> int:
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    args = parse_args(argv)
    try:
        levels = dict(logger.parse_level_option(option) for option in args.levels)
    except ValueError as e:
        return fail('error: -l/--log: %s' % e, EXIT_CONFIG)
    logger.configure(levels)
    try:
        register_components()
        for spec in args.register:
            config.register_from_spec(spec)
        loaded = config.load_config(args.config, Runner)
    except config.ConfigError as e:
        return fail('error: %s' % e, EXIT_CONFIG)
    # Levels from the config file apply unless the command line set the same module.
    logger.configure(dict({m: logger.parse_level(l) for m, l in loaded['loggers'].items()},
                          **levels))
    if args.check_config:
        print('%s: config is valid' % args.config)
        return EXIT_OK

    runner = loaded['runner']
    if os.geteuid() == 0 and not args.root:
        return fail('refusing to run as root: run as an unprivileged user with the capabilities '
                    'the config needs (see README, "Privileges"), or pass --root (-0) to run as '
                    'root anyway', EXIT_REFUSED)
    if os.geteuid() != 0:
        missing = security.missing_privileges(security.required_privileges(runner))
        if missing:
            return fail(security.describe_missing(missing), EXIT_REFUSED)

    received = _install_signal_handlers(runner)
    log.debug('starting %s', type(runner).__name__)
    try:
        status = runner.run()
    except KeyboardInterrupt:
        status = EXIT_OK
    if received:
        log.info('stopped by %s', signal.Signals(received[0]).name)
    return EXIT_OK if status is None else int(status)


def _install_signal_handlers(runner) -> list:
    """SIGTERM/SIGINT end the loop after the current iteration (exit 0). A plugin runner
    without stop() is interrupted with SystemExit(0). The handler only records the signal:
    logging from it could land in the middle of a metrics write to stderr."""
    stop = getattr(runner, 'stop', None)
    received = []

    def handler(signum, frame):
        received.append(signum)
        if callable(stop):
            stop()
        else:
            raise SystemExit(EXIT_OK)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return received


if __name__ == '__main__':
    main()
