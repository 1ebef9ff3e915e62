#!/usr/bin/env bash
# The demo: builds everything, starts the online service on loopback,
# creates a demo installation of the host simulator, issues and registers
# an Online Desktop licence, and runs "Connect to Online Desktop" and
# "Company settings → Online Desktop" with the plugin. Then it creates an
# Online ID through the service's API, connects the company with it, and
# starts the sync agent in the background. The online service and the agent
# keep running until you press Ctrl-C.
#
# Every run starts afresh: the demo installation and the online service's
# data under the demo folder are replaced.
#
#   scripts/demo.sh                 # demo data in ./demo-data, service on port 8480
#   OD_DEMO_RECORDS=1000000 OD_DEMO_PORT=9000 scripts/demo.sh
#   OD_DEMO_EMAIL=you@example.com OD_DEMO_PASSWORD=... scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${OD_HOST_DATA:-$PWD/demo-data}"
PORT="${OD_DEMO_PORT:-8480}"
RECORDS="${OD_DEMO_RECORDS:-20000}"
EMAIL="${OD_DEMO_EMAIL:-ingrid.solberg@nordlyshandel.no}"
PASSWORD="${OD_DEMO_PASSWORD:-demo-password}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"

if ! command -v curl >/dev/null; then
  echo "The demo talks to the online service with curl; install it first." >&2
  exit 1
fi

echo "== Building the plugin, the host simulator and the online service"
cargo build --workspace --quiet
TARGET="${CARGO_TARGET_DIR:-$PWD/target}/debug"
HOST="$TARGET/host-sim"
SERVICE="$TARGET/online-desktop"

echo "== Starting the online service"
LOG="$(mktemp -t online-desktop.XXXXXX.log)"
ONLINE="$DATA/online-service"
# A fresh service database: the demo company is made anew (new ids) on
# every run, and its licence may serve one company only.
rm -rf "$ONLINE"
mkdir -p "$ONLINE"
"$SERVICE" serve --addr "127.0.0.1:$PORT" --database "$ONLINE/online.db" --outbox "$ONLINE/outbox" >"$LOG" 2>&1 &
SERVICE_PID=$!
AGENT_PID=""
stop_all() {
  if [ -n "$AGENT_PID" ]; then
    # The agent stops at a safe point on SIGTERM.
    kill -TERM "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
  fi
  kill "$SERVICE_PID" 2>/dev/null || true
  wait "$SERVICE_PID" 2>/dev/null || true
}
trap stop_all EXIT
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
echo "== Connect to Online Desktop (user admin): the licence check and the requirements"
"$HOST" connect --check || true

echo
echo "== Company settings → Online Desktop"
"$HOST" settings

echo
echo "== Creating the Online ID $EMAIL through the API (sign-up, the link in the mail, a password)"
json() { curl -sf -X POST "$URL$1" -H 'Content-Type: application/json' -d "$2"; }
json /api/v1/accounts "{\"email\": \"$EMAIL\"}" >/dev/null
MAIL=""
for _ in $(seq 1 100); do
  MAIL="$(ls -t "$ONLINE/outbox"/*.eml 2>/dev/null | head -n 1 || true)"
  [ -n "$MAIL" ] && break
  sleep 0.1
done
VERIFY_TOKEN="$(grep -o 'token=[A-Za-z0-9_-]*' "$MAIL" | head -n 1 | cut -d= -f2)"
json /api/v1/accounts/verify "{\"token\": \"$VERIFY_TOKEN\", \"password\": \"$PASSWORD\"}" >/dev/null
echo "Online ID $EMAIL, password $PASSWORD (verification mail: $MAIL)"

echo
echo "== Connecting the company: the add-on's connect wizard, scripted (host-sim connect --email ... --start now)"
OD_ONLINE_PASSWORD="$PASSWORD" "$HOST" connect --email "$EMAIL" --start now

echo
echo "== Starting the sync agent in the background (keeps the company in step)"
AGENT_LOG="$DATA/sync-agent.log"
# In a session of its own, so that Ctrl-C reaches only this script, which
# then stops the agent (SIGTERM) before the service.
if command -v setsid >/dev/null; then
  setsid "$HOST" agent >"$AGENT_LOG" 2>&1 &
else
  "$HOST" agent >"$AGENT_LOG" 2>&1 &
fi
AGENT_PID=$!
for _ in $(seq 1 3000); do
  "$HOST" sync status 2>/dev/null | grep -q "First synchronisation: *done" && break
  if ! kill -0 "$AGENT_PID" 2>/dev/null; then cat "$AGENT_LOG"; exit 1; fi
  sleep 0.2
done
cat "$AGENT_LOG"
echo
"$HOST" sync status

SESSION="$(json /api/v1/sessions "{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\"}" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')"
COMPANY="$(curl -sf "$URL/api/v1/companies" -H "Authorization: Bearer $SESSION" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')"
NUMBER="$("$HOST" record show contacts 1 | sed -n 's/^number: *//p')"
# Contact 1's id online (records come in global id order; one page holds
# the default demo's 2,000 contacts).
GLOBAL_ID="$(curl -sf "$URL/api/v1/companies/$COMPANY/records/contacts?limit=5000" -H "Authorization: Bearer $SESSION" \
  | grep -o '"global_id":"[^"]*","version":[0-9]*,"fields":{[^}]*"number":'"$NUMBER"',' \
  | sed -n 's/"global_id":"\([^"]*\)".*/\1/p' | head -n 1 || true)"
GLOBAL_ID="${GLOBAL_ID:-GLOBAL_ID}"

cat <<TEXT

The online service is running at $URL (health: $URL/api/v1/health); its log: $LOG.
"Nordlys Handel AS" is connected (online company id $COMPANY) and the sync agent keeps it
in step (log: $AGENT_LOG). There is no web desktop yet: see the data through the API.

In another terminal:
  export OD_HOST_DATA="$DATA" OD_SERVICE_URL="$URL"
  TOKEN=\$(curl -s -X POST $URL/api/v1/sessions -H 'Content-Type: application/json' \\
    -d '{"email": "$EMAIL", "password": "$PASSWORD"}' | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
  curl -s "$URL/api/v1/companies/$COMPANY/records/contacts?limit=3" -H "Authorization: Bearer \$TOKEN"

Edit a contact in the program (contact 1, number $NUMBER) and see it online:
  $HOST record edit contacts 1 --set city=Tromsø
  curl -s "$URL/api/v1/companies/$COMPANY/records/contacts/$GLOBAL_ID" -H "Authorization: Bearer \$TOKEN"
And the reverse: change it online, then look in the program:
  curl -s -X PATCH "$URL/api/v1/companies/$COMPANY/records/contacts/$GLOBAL_ID" -H "Authorization: Bearer \$TOKEN" \\
    -H 'Content-Type: application/json' -d '{"fields": {"phone": "+47 77 60 00 00"}}'
  $HOST record show contacts 1
  $HOST sync status; $HOST sync history

Or use the program as a person would:
  $HOST desktop

Press Ctrl-C to stop the sync agent and the online service.
TEXT
wait "$SERVICE_PID"
