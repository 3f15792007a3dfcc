#!/usr/bin/env bash
# Runs everything CI runs: installs the system packages the real-part tests need (as root, on
# Debian, only those missing), then npm ci, lint, typecheck, the docs drift check and every test.
# Tests that need root or a real component skip loudly without them, and fail when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(containerd runc xfsprogs e2fsprogs util-linux mount procps bindfs fuse3 systemd-journal-remote attr podman buildah docker-registry prometheus chromium shellcheck jq)

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "imagefs-doctor needs Node.js 20 or later (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 2
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
else
  echo "not root (or not Debian): system packages not installed; root-only tests will be skipped" >&2
fi

npm ci --no-audit --no-fund
npm run lint
npm run typecheck
npm run docs:check
npm run rules:check
npm run deploy-manifests:check
npm run dashboards:check
npx vitest run
