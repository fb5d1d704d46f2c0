"""Stepwise."""
