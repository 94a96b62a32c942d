"""Scenario files (TOML): a what-if study in one file, with sweeps over its parameters."""
