"""Compute engines beyond this machine that the Dagster layer hands work to (Slurm)."""
