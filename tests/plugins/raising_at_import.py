"""A plugin whose import fails: `-r raising_at_import:Anything` must exit 2 with one line."""
raise RuntimeError('this plugin fails at import on purpose\nand says so on a second line')
