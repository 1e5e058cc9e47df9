# SAMPLE test: genuinely depends on the installed PyTorch version; fails with PyTorch 2.5.
set -e
version="$(torch-version)"
echo "sample-fails-on-torch-2-5 runs with PyTorch $version"
case "$version" in
  2.5.*) echo "FAIL: this sample does not work with PyTorch 2.5 (got $version)" >&2; exit 1 ;;
esac
echo "ok with PyTorch $version"
