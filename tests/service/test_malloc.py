"""The service keeps freed fleet-scale arrays in its heap (glibc's thresholds raised)."""

from __future__ import annotations

import platform

import pytest

from gridflock.service._malloc import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_thresholds_take_effect_on_glibc():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent
