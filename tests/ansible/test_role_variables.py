"""The wca role's variables: every one in defaults/main.yml is declared, with a type and a
description, in meta/argument_specs.yml (which Ansible checks the values against), and the
other way round. Needs only PyYAML."""
import os
import re

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, 'ansible', 'roles', 'wca')
TYPES = {'str', 'bool', 'int', 'float', 'dict', 'list', 'path', 'raw'}


def load(*path):
    with open(os.path.join(ROLE, *path)) as f:
        return yaml.safe_load(f)


def defaults():
    return load('defaults', 'main.yml')


def options():
    return load('meta', 'argument_specs.yml')['argument_specs']['main']['options']


def test_defaults_and_argument_specs_name_the_same_variables():
    assert sorted(defaults()) == sorted(options())


def test_every_variable_is_prefixed_wca():
    assert [name for name in defaults() if not name.startswith('wca_')] == []


def test_every_option_has_a_type_and_a_description():
    for name, spec in options().items():
        assert spec.get('type') in TYPES, name
        description = spec.get('description')
        assert isinstance(description, list) and description, name
        assert all(isinstance(line, str) and line.strip() for line in description), name


def test_argument_specs_state_the_defaults():
    """The documented default is the real one (templated defaults are compared as text)."""
    for name, value in defaults().items():
        assert options()[name].get('default') == value, name


def test_choices_include_the_default():
    for name, spec in options().items():
        if 'choices' in spec:
            assert defaults()[name] in spec['choices'], name


def test_variables_used_by_the_role_are_declared():
    """A wca_ name in a task, template, handler or internal variable is a declared variable (a
    typo would otherwise be an undefined variable at run time), or one of the role's tags,
    filters or facts."""
    set_facts = {'wca_reboot_pending'}
    tags = {tag for task in load('tasks', 'main.yml') for tag in task.get('tags', [])}
    with open(os.path.join(ROLE, 'filter_plugins', 'wca_filters.py')) as f:
        filters = set(re.findall(r"'(wca_\w+)': wca_", f.read()))
    assert 'wca_config_yaml' in filters and 'wca_rdt' in tags
    used = set()
    for directory in ('tasks', 'templates', 'vars', 'handlers'):
        for name in os.listdir(os.path.join(ROLE, directory)):
            with open(os.path.join(ROLE, directory, name)) as f:
                used.update(re.findall(r'(?<![\w.])(wca_[a-z0-9_]+)', f.read()))
    assert sorted(used - set(defaults()) - set_facts - tags - filters) == []
