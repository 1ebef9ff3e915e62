#!/usr/bin/env bash
# The demo: builds everything, starts the online service on loopback,
# creates a demo installation of the host simulator, issues and registers
# an Online Desktop licence, and runs "Connect to Online Desktop" and
# "Company settings → Online Desktop" with the plugin. The online service
# keeps running until you press Ctrl-C.
#
#   scripts/demo.sh                 # demo data in ./demo-data, service on port 8480
#   OD_DEMO_RECORDS=1000000 OD_DEMO_PORT=9000 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${OD_HOST_DATA:-$PWD/demo-data}"
PORT="${OD_DEMO_PORT:-8480}"
RECORDS="${OD_DEMO_RECORDS:-20000}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"

echo "== Building the plugin, the host simulator and the online service"
cargo build --workspace --quiet
TARGET="${CARGO_TARGET_DIR:-$PWD/target}/debug"
HOST="$TARGET/host-sim"
SERVICE="$TARGET/online-desktop"

echo "== Starting the online service"
LOG="$(mktemp -t online-desktop.XXXXXX.log)"
ONLINE="$DATA/online-service"
mkdir -p "$ONLINE"
"$SERVICE" serve --addr "127.0.0.1:$PORT" --database "$ONLINE/online.db" --outbox "$ONLINE/outbox" >"$LOG" 2>&1 &
SERVICE_PID=$!
trap 'kill "$SERVICE_PID" 2>/dev/null || true; wait "$SERVICE_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$LOG" && break
  if ! kill -0 "$SERVICE_PID" 2>/dev/null; then cat "$LOG"; exit 1; fi
  sleep 0.1
done
URL="$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$LOG" | head -n 1)"
echo "Online service: $URL"

export OD_HOST_DATA="$DATA" OD_SERVICE_URL="$URL"
echo
echo "== Creating the demo installation in $DATA ($RECORDS records)"
"$HOST" init --force --records "$RECORDS"

echo
echo "== Issuing an Online Desktop licence (development key) and registering it"
"$HOST" licence issue --out "$DATA/online-desktop-licence.json"
"$HOST" licence add "$DATA/online-desktop-licence.json"
"$HOST" licence bind --company "Nordlys Handel AS"

echo
echo "== Connect to Online Desktop (user admin)"
"$HOST" connect || true

echo
echo "== Company settings → Online Desktop"
"$HOST" settings

cat <<TEXT

The online service is running at $URL (health: $URL/api/v1/health).
Create an Online ID: open $URL/login, or
  curl -s -X POST $URL/api/v1/accounts -H 'Content-Type: application/json' -d '{"email":"you@example.com"}'
then open the link in the newest mail in $ONLINE/outbox, choose a password, and log in at $URL/login.
Its log: $LOG. The web desktop and synchronisation arrive with the next issues.

Try the program as a person would, in another terminal:
  OD_HOST_DATA="$DATA" OD_SERVICE_URL="$URL" $HOST desktop
Or break a requirement and check again, for example:
  OD_HOST_DATA="$DATA" $HOST company set-registration --phone ""
  OD_HOST_DATA="$DATA" OD_SERVICE_URL="$URL" $HOST connect

Press Ctrl-C to stop the online service.
TEXT
wait "$SERVICE_PID"
