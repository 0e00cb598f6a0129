"""After a fleet import the history and grid views answer (no internal error, no 4xx)."""

from __future__ import annotations

import pytest

from gridflock.fleet.files import write_fleet
from gridflock.fleet.generate import generate_fleet


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/grid-nodes",
        "/api/v1/fleet/history/groups",
        "/api/v1/fleet/history/groups?by=program",
        "/api/v1/fleet/history",
    ],
)
def test_views_answer_after_an_import_of_another_fleet(client, runtime, keys, tmp_path, url):
    runtime.step(130.0)  # minute samples of the old fleet's nodes and tags
    path = tmp_path / "fleet.yaml"
    write_fleet(generate_fleet(30, 3), path)
    r = client.post(
        "/api/v1/fleet/import",
        content=path.read_bytes(),
        headers={**keys.h("admin"), "content-type": "application/yaml"},
    )
    assert r.status_code == 200, r.text
    runtime.step(70.0)
    r = client.get(url, headers=keys.h("viewer"))
    assert r.status_code == 200, r.text
