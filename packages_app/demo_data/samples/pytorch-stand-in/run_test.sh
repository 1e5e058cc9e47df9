# Test of the SAMPLE STAND-IN for PyTorch: its script is on PATH and prints its version.
set -e
test "$(torch-version)" = "$PKG_VERSION"
echo "torch-version prints $(torch-version)"
