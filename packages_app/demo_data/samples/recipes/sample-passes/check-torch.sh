# SAMPLE test, shipped as a test file: run from the test's working directory, it needs the
# PyTorch stand-in in the test environment and passes with any version of it.
set -e
version="$(torch-version)"
echo "sample-passes runs with PyTorch $version in $(pwd)"
