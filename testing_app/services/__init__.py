"""Services of the testing side: every write about hosts, workers, jobs and their results."""
