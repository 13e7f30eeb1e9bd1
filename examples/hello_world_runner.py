"""The smallest plugin: a Runner that prints "Hello world!" (extending.txt's first example).

    PYTHONPATH=examples python -m wca -c configs/extending/hello_world.yaml \
        -r hello_world_runner:HelloWorldRunner
"""
from wca.runners import Runner


class HelloWorldRunner(Runner):
    def run(self):
        print('Hello world!')
