"""Measurement and verification: what each event delivered against its baseline."""

from gridflock.mv.performance import EventPerformance, event_performance

__all__ = ["EventPerformance", "event_performance"]
