"""Prefect tasks: thin wrappers over ``nst_core``."""
