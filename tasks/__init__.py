"""The pipeline's parts, in wings: ``manifest`` (rows into pairs), ``storage`` (the output root and what is
written there), ``runs`` (running pairs and reporting on the run) and ``gallery``; ``render`` holds the Prefect
tasks that wrap them, the only module here that imports Prefect. ``flows`` composes the tasks."""
