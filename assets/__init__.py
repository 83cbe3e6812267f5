"""The Dagster layer: asset and check definitions, schedules, sensors, `definitions.py`.

Loaded from the project root (`-m assets.definitions`, workspace.yaml); not installed.
"""
