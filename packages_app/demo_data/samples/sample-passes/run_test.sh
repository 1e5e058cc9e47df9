# SAMPLE test: needs the PyTorch stand-in in the activated test environment; passes with any.
set -e
version="$(torch-version)"
echo "sample-passes runs with PyTorch $version"
