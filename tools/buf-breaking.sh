#!/usr/bin/env bash
# `make lint`: buf breaking for proto/ against its previous version: HEAD when proto/ has
# uncommitted changes, else the commit before the last one that changed proto/.
set -euo pipefail
cd "$(dirname "$0")/.."
buf=tools/buf/node_modules/.bin/buf
if ! git rev-parse -q --verify HEAD >/dev/null; then
  echo "buf breaking: no commit to compare proto/ with"
  exit 0
fi
if [ -n "$(git status --porcelain -- proto)" ]; then
  against=HEAD
else
  last=$(git log -n 1 --format=%H -- proto)
  if ! against=$(git rev-parse -q --verify "$last~1"); then
    echo "buf breaking: proto/ has no earlier version in this clone"
    exit 0
  fi
fi
if ! git cat-file -e "$against:proto" 2>/dev/null; then
  echo "buf breaking: proto/ did not exist at $against"
  exit 0
fi
echo "buf breaking against proto/ at $(git rev-parse --short "$against")"
"$buf" breaking --against ".git#ref=$against,subdir=proto"
