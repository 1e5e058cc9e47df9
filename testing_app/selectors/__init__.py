"""Reads for the matrix, runs, jobs, hosts and trends (one module per topic)."""
