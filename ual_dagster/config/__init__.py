"""Profiles: run configuration as YAML validated by typed models."""

from ual_dagster.config.loader import (
    PROFILE_ENV,
    ProfileError,
    active_profile,
    bundled_profiles,
    load_profile,
)
from ual_dagster.config.paths import PROJECT_ROOT, resolve_path
from ual_dagster.config.profile import Profile

__all__ = [
    "PROFILE_ENV",
    "PROJECT_ROOT",
    "Profile",
    "ProfileError",
    "active_profile",
    "bundled_profiles",
    "load_profile",
    "resolve_path",
]
