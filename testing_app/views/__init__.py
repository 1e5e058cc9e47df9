"""Pages of the testing side: matrix, runs, jobs, hosts, trends, badges (one module each)."""
