"""DER curves from grid-code profiles written to models 705/706/711 over real Modbus TCP.

The oracle is :mod:`gridflock.gridcode` evaluated directly: the curve the device holds
(read from the twin's registers) must give the profile's response at every voltage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridflock.domain import ValidationError
from gridflock.edge.config import SunSpecDevice, parse_config
from gridflock.edge.sunspec import SunSpecDriver, discover
from gridflock.edge.sunspec._transport import PymodbusSunSpecDevice
from gridflock.edge.sunspec.der_write import write_der
from gridflock.gridcode import curve_value, profile
from gridflock.sim.sunspec_server import BatteryUnit, PvInverterUnit, SunSpecServer

from ._site import HOST, free_port, run_with_server, server_in_thread

V_SWEEP = np.linspace(0.85, 1.15, 301)


def dev(port: int, unit: int, kind: str, id_: str, **kw: Any) -> SunSpecDevice:
    return SunSpecDevice(
        id=id_, kind=kind, protocol="sunspec", host=HOST, port=port, unit=unit, **kw
    )  # type: ignore[arg-type]


def active(unit: Any, mid: int) -> Any:
    m = unit.model(mid)
    return m.groups["Ctl" if mid == 711 else "Crv"][0]


def device_curve(unit: Any, mid: int) -> tuple[np.ndarray, np.ndarray]:
    """The active curve the device holds, in pu (V of nominal, Var/W of rating)."""
    c = active(unit, mid)
    y = "Var" if mid == 705 else "W"
    n = c.ActPt.value
    v = np.array([c.Pt[k].V.cvalue for k in range(n)]) / 100.0
    q = np.array([c.Pt[k].points[y].cvalue for k in range(n)]) / 100.0
    return v, q


def outcomes(drv: SunSpecDriver, dev_id: str) -> dict[int, str]:
    return {o.model: o.status for o in drv.der_outcomes(dev_id)}


@pytest.mark.parametrize(
    ("code", "flavour"), [("US-CA-RULE21", "7xx"), ("DE-VDE4105", "1xx"), ("AU-B", "7xx")]
)
def test_written_curves_equal_the_profile(code: str, flavour: str) -> None:
    pv = PvInverterUnit(5.0, flavour=flavour, der_models=(705, 706, 711))
    prof = profile(code)

    async def body(port: int) -> None:
        drv = SunSpecDriver([dev(port, 1, "pv", "pv", grid_code=code)])
        await drv.start()
        try:
            assert outcomes(drv, "pv") == {705: "verified", 706: "verified", 711: "verified"}
        finally:
            await drv.close()

    run_with_server({1: pv}, body)
    for mid, curve in ((705, prof.volt_var), (706, prof.volt_watt)):
        v, y = device_curve(pv, mid)
        np.testing.assert_allclose(v, curve.x, atol=5e-5)
        np.testing.assert_allclose(y, curve.y, atol=5e-5)
        got = np.interp(V_SWEEP, v, y)
        np.testing.assert_allclose(got, curve_value(curve, V_SWEEP), atol=1e-4)
        assert pv.model(mid).Ena.value == int(curve.enabled)
        assert active(pv, mid).RspTms.cvalue == pytest.approx(curve.response_s)
    c = active(pv, 711)
    fw = prof.freq_watt
    assert c.DbOf.cvalue == pytest.approx(fw.db_over_hz)
    assert c.KOf.cvalue == pytest.approx(fw.droop_over)
    assert c.DbUf.cvalue == pytest.approx(fw.db_under_hz)
    assert c.KUf.cvalue == pytest.approx(fw.droop_under)
    assert c.RspTms.cvalue == pytest.approx(fw.response_s)
    assert pv.model(711).Ena.value == 1
    assert active(pv, 705).DeptRef.value == 1  # % of VarMax
    assert active(pv, 706).DeptRef.value == 0  # % of WMax


def test_device_without_705_gets_706_and_711(caplog: pytest.LogCaptureFixture) -> None:
    pv = PvInverterUnit(5.0, flavour="7xx", der_models=(706, 711))
    bat = BatteryUnit(10.0, 5.0, flavour="7xx", der_models=(705, 706, 711))
    prof = profile("IEEE1547-B")

    async def body(port: int) -> None:
        drv = SunSpecDriver(
            [
                dev(port, 1, "pv", "pv", grid_code="IEEE1547-B"),
                dev(port, 2, "battery", "bat", grid_code="IEEE1547-B"),
            ]
        )
        with caplog.at_level(logging.WARNING):
            await drv.start()
        try:
            assert outcomes(drv, "pv") == {705: "absent", 706: "verified", 711: "verified"}
            assert outcomes(drv, "bat") == {705: "verified", 706: "verified", 711: "verified"}
            # the device still takes setpoints
            assert (await drv.apply("pv", 2.0, 1e12)).accepted
        finally:
            await drv.close()

    run_with_server({1: pv, 2: bat}, body)
    assert "no SunSpec model 705" in caplog.text
    v, y = device_curve(pv, 706)
    np.testing.assert_allclose(np.interp(V_SWEEP, v, y), curve_value(prof.volt_watt, V_SWEEP))
    assert pv.model(706).Ena.value == 0  # IEEE 1547 leaves volt-watt off by default
    v, y = device_curve(bat, 705)
    np.testing.assert_allclose(np.interp(V_SWEEP, v, y), curve_value(prof.volt_var, V_SWEEP))


def test_overrides_and_no_under_frequency_response() -> None:
    pv = PvInverterUnit(5.0, flavour="7xx", der_models=(705, 706, 711))
    over = {
        "volt_var": {"y_pu": [0.3, 0.0, 0.0, -0.3], "enabled": True},
        "freq_droop": {"droop_over": 0.04},
    }

    async def body(port: int) -> None:
        entry = dev(port, 1, "pv", "pv", grid_code="GB-G99", der_curves=over)
        drv = SunSpecDriver([entry])
        await drv.start()
        await drv.close()

    with pytest.raises(ValueError, match="curve has 2 x and 4 y"):
        dev(1, 1, "pv", "x", grid_code="GB-G99", der_curves=over)  # G99's curve has 2 points
    over["volt_var"]["v_pu"] = [0.9, 0.95, 1.05, 1.1]
    run_with_server({1: pv}, body)
    v, y = device_curve(pv, 705)
    np.testing.assert_allclose(v, [0.9, 0.95, 1.05, 1.1], atol=5e-5)
    np.testing.assert_allclose(y, [0.3, 0.0, 0.0, -0.3], atol=5e-5)
    assert pv.model(705).Ena.value == 1
    c = active(pv, 711)
    assert c.KOf.cvalue == pytest.approx(0.04)
    assert c.DbOf.cvalue == pytest.approx(0.4)
    # G99 asks no under-frequency response: none within continuous operation (49-51 Hz)
    assert c.DbUf.cvalue == pytest.approx(1.0)


def test_too_many_points_refused_others_written() -> None:
    pv = PvInverterUnit(5.0, flavour="7xx", der_models=(705, 706, 711), der_points=3)

    async def body(port: int) -> None:
        drv = SunSpecDriver([dev(port, 1, "pv", "pv", grid_code="NZ")])
        await drv.start()
        try:
            got = {o.model: o for o in drv.der_outcomes("pv")}
            assert got[705].status == "refused"
            assert "4 points, the device takes at most 3" in got[705].detail
            assert got[706].status == "verified"  # NZ's volt-watt has 2 points
            assert got[711].status == "verified"
        finally:
            await drv.close()

    run_with_server({1: pv}, body)
    assert pv.model(705).Ena.value == 0  # factory state kept


def test_written_again_after_the_device_comes_back() -> None:
    async def main() -> None:
        port = free_port()
        pv = PvInverterUnit(5.0, flavour="7xx", der_models=(705, 706, 711))
        srv = SunSpecServer({1: pv}, port=port)
        await srv.start()
        drv = SunSpecDriver([dev(port, 1, "pv", "pv", grid_code="AU-A", timeout_s=0.5)])
        drv.read_wait_s = 3.0
        await drv.start()
        await srv.stop()
        for d in drv._devs.values():
            d.next_due = 0.0
        assert await drv.read() == []  # silent
        fresh = PvInverterUnit(5.0, flavour="7xx", der_models=(705, 706, 711))  # factory reset
        srv = SunSpecServer({1: fresh}, port=port)
        await srv.start()
        try:
            for d in drv._devs.values():
                d.next_due = 0.0
            assert len(await drv.read()) == 1
            assert outcomes(drv, "pv") == {705: "verified", 706: "verified", 711: "verified"}
            v, y = device_curve(fresh, 705)
            curve = profile("AU-A").volt_var
            np.testing.assert_allclose(np.interp(V_SWEEP, v, y), curve_value(curve, V_SWEEP))
        finally:
            await drv.close()
            await srv.stop()

    asyncio.run(main())


def test_discover_shows_the_der_models() -> None:
    pv = PvInverterUnit(5.0, flavour="7xx", der_models=(706, 711))

    async def body(port: int) -> None:
        (u,) = await discover(HOST, port, [1], timeout_s=1.0)
        assert u.der_models == [704, 706, 711]
        assert u.as_dict()["der_models"] == [704, 706, 711]
        assert not u.unsupported

    run_with_server({1: pv}, body)


def test_bad_grid_code_reported_with_every_other_problem() -> None:
    raw = {
        "gateway": {"id": "gw-1", "broker": "mqtt://127.0.0.1:1883"},
        "devices": [
            {"id": "pv", "protocol": "sunspec", "kind": "pv", "host": HOST, "grid_code": "XX-1"},
            {"id": "bat", "protocol": "sunspec", "kind": "battery", "host": HOST, "unit": 0},
            {
                "id": "pv2",
                "protocol": "sunspec",
                "kind": "pv",
                "host": HOST,
                "unit": 3,
                "der_curves": {"volt_var": {"v_pu": [0.9, 1.1]}},
            },
            {
                "id": "m",
                "protocol": "sunspec",
                "kind": "meter",
                "host": HOST,
                "unit": 4,
                "grid_code": "NZ",
            },
        ],
    }
    with pytest.raises(ValidationError) as e:
        parse_config(raw, "edge.yaml")
    text = "\n".join(str(p) for p in e.value.problems)
    assert "device pv: grid_code: unknown grid code; known: AU-A" in text
    assert "IEEE1547-B" in text
    assert "DE-VDE4105" in text
    assert "device bat: unit" in text
    assert "device pv2: der_curves.volt_var: give y_pu, response_s" in text
    assert "device m: a meter takes no grid_code" in text
    assert len(e.value.problems) == 4


def test_value_the_register_cannot_hold_is_refused_not_wrapped() -> None:
    # a device whose voltage scale factor (0.001 %) cannot hold 110 % VNom in a uint16
    pv = PvInverterUnit(5.0, flavour="7xx", der_models=(705, 706, 711))
    pv.model(705).V_SF.value = -3

    async def body(port: int) -> None:
        drv = SunSpecDriver([dev(port, 1, "pv", "pv", grid_code="US-CA-RULE21")])
        await drv.start()
        try:
            got = {o.model: o for o in drv.der_outcomes("pv")}
            assert got[705].status == "refused"
            assert "does not fit the register at scale factor -3" in got[705].detail
            assert (got[706].status, got[711].status) == ("verified", "verified")
        finally:
            await drv.close()

    before = pv.model(705).get_mb()
    run_with_server({1: pv}, body)
    assert pv.model(705).get_mb() == before  # nothing written


def test_a_device_that_does_not_adopt_fails_verification() -> None:
    pv = PvInverterUnit(5.0, flavour="7xx", der_models=(705, 706, 711))
    real = pv.der.written

    def ignore_705(model: Any) -> None:  # a device that acknowledges but keeps its curve
        if model.model_id == 705:
            model.AdptCrvReq.value = 0
            return
        real(model)

    pv.der.written = ignore_705  # type: ignore[method-assign]

    async def body(port: int) -> None:
        drv = SunSpecDriver([dev(port, 1, "pv", "pv", grid_code="US-CA-RULE21")])
        await drv.start()
        try:
            got = {o.model: o for o in drv.der_outcomes("pv")}
            assert got[705].status == "failed"
            assert "reads back as" in got[705].detail
            assert (got[706].status, got[711].status) == ("verified", "verified")
        finally:
            await drv.close()

    run_with_server({1: pv}, body)


@st.composite
def curves(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    n = draw(st.integers(2, 4))
    xs = sorted(draw(st.sets(st.integers(5000, 15000), min_size=n, max_size=n)))
    ys = draw(st.lists(st.integers(-10_000, 10_000), min_size=n, max_size=n))
    return [x / 10_000 for x in xs], [y / 10_000 for y in ys]


@pytest.fixture(scope="module")
def twin() -> Iterator[tuple[PvInverterUnit, int]]:
    """One twin PV inverter with models 705/706/711 served from a background thread."""
    pv = PvInverterUnit(5.0, flavour="7xx", der_models=(705, 706, 711))
    with server_in_thread({1: pv}) as port:
        yield pv, port


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    vv=curves(),
    vw=curves(),
    db=st.floats(0.0, 2.0),
    k=st.floats(0.001, 0.2),
    rsp=st.floats(0.1, 90.0),
)
def test_any_valid_curve_reads_back_within_one_step(
    twin: tuple[PvInverterUnit, int],
    vv: tuple[list[float], list[float]],
    vw: tuple[list[float], list[float]],
    db: float,
    k: float,
    rsp: float,
) -> None:
    over = {
        "volt_var": {"v_pu": vv[0], "y_pu": vv[1], "response_s": rsp},
        "volt_watt": {"v_pu": vw[0], "y_pu": vw[1], "response_s": rsp},
        "freq_droop": {
            "db_over_hz": db,
            "droop_over": k,
            "db_under_hz": db,
            "droop_under": k,
            "response_s": min(rsp, 60.0),
        },
    }
    pv, port = twin
    entry = SunSpecDevice(
        id="pv", kind="pv", protocol="sunspec", host=HOST, port=port, der_curves=over
    )  # type: ignore[arg-type]
    der = entry.der_settings()
    assert der is not None
    link = PymodbusSunSpecDevice(HOST, port, 1)
    try:
        link.scan(connect=False)
        models = {int(k): v[0] for k, v in link.models.items() if isinstance(k, int)}
        out = {o.model: o.status for o in write_der(models, der, "pv")}
    finally:
        link.close()
    assert out == {705: "verified", 706: "verified", 711: "verified"}
    for mid, (x, y) in ((705, vv), (706, vw)):
        v, q = device_curve(pv, mid)
        np.testing.assert_allclose(v, x, atol=5.1e-5)
        np.testing.assert_allclose(q, y, atol=5.1e-5)
        np.testing.assert_allclose(np.interp(V_SWEEP, v, q), np.interp(V_SWEEP, x, y), atol=2e-4)
    c = active(pv, 711)
    assert abs(c.DbOf.cvalue - db) <= 5.1e-4
    assert abs(c.DbUf.cvalue - db) <= 5.1e-4
    assert abs(c.KOf.cvalue - k) <= 5.1e-4
    assert c.RspTms.cvalue == pytest.approx(min(rsp, 60.0), abs=0.051)


def test_edge_check_shows_the_curve_source_and_lists_a_bad_code(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gridflock.cli import app

    runner = CliRunner()
    good = tmp_path / "edge.yaml"
    good.write_text(
        "gateway: {id: gw-1, broker: 'mqtt://127.0.0.1:1883'}\n"
        "devices:\n"
        "  - {id: pv-1, kind: pv, protocol: sunspec, host: 10.0.0.5, grid_code: NZ}\n"
    )
    r = runner.invoke(app, ["edge", "check", str(good)], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "NZ" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "gateway: {id: gw-1, broker: 'mqtt://127.0.0.1:1883'}\n"
        "devices:\n"
        "  - {id: pv-1, kind: pv, protocol: sunspec, host: 10.0.0.5, grid_code: DE-VDE}\n"
        "  - {id: pv-2, kind: pv, protocol: sunspec, host: 10.0.0.5, unit: 300}\n"
    )
    r = runner.invoke(app, ["edge", "check", str(bad)])
    assert r.exit_code == 2
    text = " ".join(r.stderr.split())
    assert "2 problem(s) found" in text
    assert "device pv-1: grid_code: unknown grid code; known:" in text
    assert "DE-VDE4105" in text


def test_curves_changed_on_the_device_are_written_again(caplog: pytest.LogCaptureFixture) -> None:
    pv = PvInverterUnit(5.0, flavour="7xx", der_models=(705, 706, 711))
    prof = profile("US-CA-RULE21")

    async def body(port: int) -> None:
        drv = SunSpecDriver([dev(port, 1, "pv", "pv", grid_code="US-CA-RULE21")], der_check_s=0.0)
        drv.read_wait_s = 3.0
        await drv.start()
        try:
            writes = pv.writes
            for d in drv._devs.values():
                d.next_due = 0.0
            assert len(await drv.read()) == 1
            assert pv.writes == writes  # unchanged: only read back
            # another tool switches volt-var off and moves a point of the active curve
            m = pv.model(705)
            m.Ena.value = 0
            m.groups["Crv"][0].Pt[1].Var.cvalue = 10.0
            pv.der = type(pv.der)(pv.models)  # the twin takes the change as its own
            for d in drv._devs.values():
                d.next_due = 0.0
            with caplog.at_level(logging.WARNING):
                assert len(await drv.read()) == 1
            assert pv.writes > writes
            assert outcomes(drv, "pv") == {705: "verified", 706: "verified", 711: "verified"}
        finally:
            await drv.close()

    run_with_server({1: pv}, body)
    assert "changed on the device; writing them again" in caplog.text
    v, y = device_curve(pv, 705)
    np.testing.assert_allclose(np.interp(V_SWEEP, v, y), curve_value(prof.volt_var, V_SWEEP))
    assert pv.model(705).Ena.value == 1
