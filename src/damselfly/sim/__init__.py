"""The simpy network simulator: simulated hosts driven by the shared scheduling core."""
