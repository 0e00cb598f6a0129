"""Gridflock: a virtual power plant made of thousands of small energy resources."""

__version__ = "0.1.0"
