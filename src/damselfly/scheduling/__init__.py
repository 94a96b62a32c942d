"""The scheduling core (being filled in)."""
