"""``python -m gridflock``: the same as the ``gridflock`` command."""

from gridflock.cli import app

app()
