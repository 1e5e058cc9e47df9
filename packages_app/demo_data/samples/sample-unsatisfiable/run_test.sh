# SAMPLE test: never runs, since no sample-passes >=99 exists to install it with.
torch-version
