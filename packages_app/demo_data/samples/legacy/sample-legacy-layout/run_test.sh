# SAMPLE test in conda-build's layout (info/test/run_test.sh): needs the PyTorch stand-in in the
# activated test environment; like sample-fails-on-torch-2-5, it fails with PyTorch 2.5, so the
# conda-build path shows both verdicts.
set -e
version="$(torch-version)"
echo "sample-legacy-layout runs with PyTorch $version"
case "$version" in
  2.5.*) echo "FAIL: this sample does not work with PyTorch 2.5 (got $version)" >&2; exit 1 ;;
esac
echo "ok with PyTorch $version"
