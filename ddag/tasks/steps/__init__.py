"""The named steps tasks are written in: runtime, data, networks, reporting.

Each module takes the typed run configuration (`ddag.config.schema.Config`) and builds one kind
of object from it; a task's `run()` is a short list of these steps.
"""
