"""Prefect flows that compose ``tasks``, and the ``stylebatch`` command."""
