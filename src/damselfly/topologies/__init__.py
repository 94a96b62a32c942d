"""Network topologies as networkx graphs: hosts, switches and links with capacity and latency."""
