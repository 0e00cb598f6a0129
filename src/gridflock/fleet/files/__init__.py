"""Fleet files: a :class:`FleetSpec` read from and written to YAML or CSV.

YAML (version 1) is for fleets people edit: grid nodes, then sites with their devices
nested under them. CSV is the bulk format: one row per device carrying its site's columns
(prefixed ``site_``), with the grid nodes in a companion ``<stem>.grid_nodes.csv``. Both
formats are checked here for structure (unknown keys and columns, versions, syntax) and
handed to :func:`gridflock.domain.build_spec` for per-field validation, so every problem
in a file is reported at once. The format is described in ``docs/fleet-files.md``, whose
attribute tables come from :func:`attribute_tables_markdown`.
"""

from gridflock.fleet.files._docs import attribute_tables_markdown
from gridflock.fleet.files._readwrite import read_fleet, write_fleet
from gridflock.fleet.files._yaml import YAML_VERSION
from gridflock.fleet.files._yaml_fast import _fast_yaml as _fast_yaml  # used by the tests

__all__ = ["YAML_VERSION", "attribute_tables_markdown", "read_fleet", "write_fleet"]
