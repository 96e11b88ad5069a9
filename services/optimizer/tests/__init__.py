"""Tests of the optimizer service."""
