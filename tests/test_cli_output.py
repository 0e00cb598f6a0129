"""The words `gridflock simulate` prints: signs, step resolution, no mid-phrase wraps."""

from __future__ import annotations

import pytest

from gridflock.cli.simulate import duration_text, peak_text, t90_text


@pytest.mark.parametrize(
    ("without", "with_", "pct", "says"),
    [
        (1060.0, 842.0, 20.57, "(20.6 % lower with the VPP)"),
        (800.0, 840.0, -5.0, "(5.0 % higher with the VPP)"),
        (800.0, 800.0, 0.0, "(unchanged)"),
    ],
)
def test_the_peak_line_says_lower_or_higher_without_a_sign(without, with_, pct, says):
    text = peak_text(without, with_, pct)
    assert text.endswith(says)
    assert "+" not in text
    assert "-" not in text.split("(")[1]


@pytest.mark.parametrize(
    ("t90", "step", "says"),
    [
        (0.0, 60.0, "90 % reached within the first step (1 min)"),
        (30.0, 60.0, "90 % reached within the first step (1 min)"),
        (120.0, 60.0, "90 % reached after 2 min"),
        (4.0, 2.0, "90 % reached after 4 s"),
        (None, 60.0, "90 % never reached"),
        (5400.0, 60.0, "90 % reached after 1 h 30 min"),
    ],
)
def test_time_to_90_respects_the_step(t90, step, says):
    assert t90_text(t90, step) == says


def test_durations():
    assert duration_text(59) == "59 s"
    assert duration_text(3600) == "1 h"
