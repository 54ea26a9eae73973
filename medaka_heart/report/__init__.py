"""Figures of a run's results (matplotlib, Agg backend: no display needed)."""
