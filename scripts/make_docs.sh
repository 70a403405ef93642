#!/usr/bin/env bash
# Regenerate the pictures under docs/ that README shows (`make docs` runs this):
#   docs/resnet18.png   ResNet-18, blocks folded (--depth 2), with parameters and MACs
#   docs/resnet18.svg   ResNet-18, every op
#   docs/unet.png       U-Net (--depth 2): encoder and decoder side by side, bridges across
#   docs/report.png     the HTML report of ResNet-18 in headless Chromium
#   docs/viewer.png     `archspec view` of ResNet-50 after its script has laid the graph out
# Needs graphviz's `dot`; the screenshot also needs `chromium` (skipped without it).
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHSPEC="${ARCHSPEC:-.venv/bin/archspec}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p docs

"$ARCHSPEC" diagram specs/resnet18.yaml --depth 2 --params --out "$work/resnet18.png"
"$ARCHSPEC" diagram specs/resnet18.yaml --params --out "$work/resnet18.svg"
"$ARCHSPEC" diagram specs/unet.yaml --depth 2 --params --out "$work/unet.png"
install -m 0644 "$work/resnet18.png" "$work/resnet18.svg" "$work/unet.png" docs/

"$ARCHSPEC" report specs/resnet18.yaml --format html --out "$work/report"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -n "$browser" ]; then
  "$browser" --headless --disable-gpu --no-sandbox --hide-scrollbars --user-data-dir="$work/profile" \
    --window-size=1280,2600 --screenshot="$work/report.png" "file://$work/report/report.html" 2>/dev/null
  install -m 0644 "$work/report.png" docs/
  "$ARCHSPEC" view specs/resnet50.yaml --depth 2 --out "$work/view.html"
  # the page lays itself out in script (ELK): give it virtual time before the picture
  "$browser" --headless --disable-gpu --no-sandbox --hide-scrollbars --user-data-dir="$work/profile" \
    --window-size=1280,800 --virtual-time-budget=10000 --screenshot="$work/viewer.png" "file://$work/view.html" 2>/dev/null
  install -m 0644 "$work/viewer.png" docs/
else
  echo "chromium not found: docs/report.png left as it is (apt-get install chromium)" >&2
fi
ls -l docs/
