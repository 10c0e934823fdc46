"""Evaluation: speech metrics and ``soundspring eval`` commands."""
