"""Test infrastructure shared by the test modules (not shipped in the wheel)."""
