"""Reporting: what finished runs and their scores become for a reader (tables, manifests, sweep
summaries, figures); scoring itself lives in `ddag.evaluation`."""
