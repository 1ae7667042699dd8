#!/usr/bin/env bash
# `make run`: a local Redis that persists under .data/, and the sidecar in the foreground.
# Ctrl-C stops both. Extra arguments go to `sidecar serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${MAC_DATA_DIR:-.data}
port=${MAC_DEV_REDIS_PORT:-6380}
mkdir -p "$data/redis"

secret_file="$data/identity-secret"
if [ ! -s "$secret_file" ]; then
  (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_hex(32))' >"$secret_file")
  echo "generated a development identity secret in $secret_file (keep it: it keys every contact)"
fi

if redis-cli -p "$port" ping >/dev/null 2>&1; then
  echo "port $port is already taken by a Redis; stop it or set MAC_DEV_REDIS_PORT" >&2
  exit 1
fi
redis-server --port "$port" --bind 127.0.0.1 --dir "$(pwd)/$data/redis" \
  --appendonly yes --appendfsync everysec --save "" \
  --logfile "$(pwd)/$data/redis.log" --daemonize no &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true' EXIT

for _ in $(seq 50); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  kill -0 "$redis_pid" 2>/dev/null || { echo "redis-server failed; see $data/redis.log" >&2; exit 1; }
  sleep 0.1
done
echo "redis on 127.0.0.1:$port, data in $data/redis"

export MAC_REDIS_URL=${MAC_REDIS_URL:-redis://127.0.0.1:$port/0}
# where MAC_FAILURE_MODE=allow journals contacts it lets in while Redis is away
export MAC_JOURNAL_DIR=${MAC_JOURNAL_DIR:-$(pwd)/$data/journal}
if [ -z "${MAC_IDENTITY_SECRET:-}" ]; then
  export MAC_IDENTITY_SECRET_FILE=${MAC_IDENTITY_SECRET_FILE:-$secret_file}
fi
echo "the operator CLI: .venv/bin/sidecar --help (or: source .venv/bin/activate; sidecar --help)"
.venv/bin/sidecar serve "$@"
