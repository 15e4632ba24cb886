#!/usr/bin/env bash
# Installs the DevTools oracle: the pinned npm packages (npm ci, package-lock.json) and the
# esbuild bundle of DevTools' heap snapshot code (dist/devtools-heap-snapshot.mjs).
# Idempotent and quiet: npm ci runs only when node_modules does not match the lock file;
# the bundle (under a second) is rebuilt every time. Prints one line on success.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "devtools-oracle/install.sh: $tool not found (Node.js >= 20 with npm is required)" >&2
    exit 1
  fi
done

# DevTools' code needs ES2023 (Array.prototype.toSorted…): Node 20 or newer.
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "devtools-oracle/install.sh: Node.js >= 20 required, found $(node --version)" >&2
  exit 1
fi

stamp=node_modules/.heapgate-oracle-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  cp package-lock.json "$stamp"
fi
node build.mjs
echo "devtools-oracle: ready ($(node -p 'require("./node_modules/chrome-devtools-frontend/package.json").version' 2>/dev/null || echo '?'), dist/devtools-heap-snapshot.mjs)"
