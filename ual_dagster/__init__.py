"""ual-dagster: Uncertainty-Aware Learning as a Dagster pipeline (library layer)."""
