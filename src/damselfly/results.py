"""Results schema."""
