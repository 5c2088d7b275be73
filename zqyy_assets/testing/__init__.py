"""Test doubles that speak real protocols (the fake DashScope server), used by tests, benchmarks and the demo."""
