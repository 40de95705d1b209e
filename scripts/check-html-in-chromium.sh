#!/usr/bin/env bash
# Renders `lossref check --html` in a real headless browser (Chromium) and checks what it
# shows: the verdict, the diagnosis and one SVG scatter per loss of the corpus; it also
# leaves a screenshot to look at. Needs chromium (apt-get install -y chromium).
#
#   scripts/check-html-in-chromium.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
lossref() { cargo run -q --release -- "$@"; }
# lossref's own fast paths, and the same results with a sum where the mean is asked
lossref report --write-results "$out/fast.json" > /dev/null
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
r = json.load(open(f"{out}/fast.json"))
wrong = {"implementation": "sum-instead-of-mean", "results": {}}
for cid, v in r["results"].items():
    if cid.startswith("softmax_ce-mean/"):
        n = len(v["gradients"]["logits"])
        wrong["results"][cid] = {"outputs": {"loss": v["outputs"]["loss"] * n},
                                 "gradients": {"logits": [[x * n for x in row] for row in v["gradients"]["logits"]]}}
json.dump(wrong, open(f"{out}/wrong.json", "w"))
PY
lossref check --results "$out/fast.json" --html "$out/fast.html" > /dev/null
lossref check --results "$out/wrong.json" --html "$out/wrong.html" > /dev/null || true
dump() { chromium --headless --no-sandbox --disable-gpu --dump-dom "file://$1" 2> /dev/null; }
fast_dom="$(dump "$out/fast.html")"
wrong_dom="$(dump "$out/wrong.html")"
grep -q '<span class="pass">PASSED</span>' <<< "$fast_dom"
test "$(grep -o '<svg' <<< "$fast_dom" | wc -l)" -eq 11   # one scatter per loss of SPEC §1
grep -q 'matches if the loss is a sum over the batch, not a mean' <<< "$wrong_dom"
chromium --headless --no-sandbox --disable-gpu --window-size=1200,1600 \
  --screenshot="$out/wrong.png" "file://$out/wrong.html" 2> /dev/null
echo "the pages render: $out/fast.html, $out/wrong.html (screenshot $out/wrong.png)"
