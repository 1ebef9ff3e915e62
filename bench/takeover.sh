#!/usr/bin/env bash
# The takeover, end to end (docs/SYNC_PROTOCOL.md §10; docs/PERFORMANCE.md,
# "Takeover"): set up as bench/first-sync.sh does (release service, a
# host-sim installation whose demo company has RECORDS records, an Online ID,
# `host-sim sync connect`) and run the first sync to completion (not timed).
# Then the sync computer loses its add-on folder, `host-sim settings
# sync-computer` registers it again, and `host-sim agent --now` takes the
# online records over. Timed from the agent's start until it reports `state
# running`. Prints the wall time, records per second, the peak RSS of the
# agent and of the service, and the online record counts before and after
# (equal: nothing was sent twice).
#
# Builds nothing: first
#   cargo build --release -p host-sim -p online-desktop -p od-online
# Usage: bench/takeover.sh [RECORDS]   (default 200000)
# Environment: OD_BENCH_DIR (default: a new temporary folder, removed at the
# end unless OD_BENCH_KEEP=1), OD_BENCH_PORT (default: a free port).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
T=$ROOT/target/release
RECORDS="${1:-200000}"
for binary in online-desktop host-sim libonline_desktop.so; do
    [ -e "$T/$binary" ] || { echo "missing $T/$binary: build the release binaries first" >&2; exit 2; }
done
P="${OD_BENCH_DIR:-$(mktemp -d /tmp/od-takeover.XXXXXX)}"
rm -rf "$P/data" "$P/online"
mkdir -p "$P/online/outbox"
PORT="${OD_BENCH_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
URL=http://127.0.0.1:$PORT
"$T/online-desktop" serve --addr "127.0.0.1:$PORT" --database "$P/online/online.db" \
    --outbox "$P/online/outbox" > "$P/service.log" 2>&1 &
SPID=$!
APID=
cleanup() {
    [ -n "$APID" ] && kill "$APID" 2>/dev/null
    kill "$SPID" 2>/dev/null
    wait 2>/dev/null
    [ -n "${OD_BENCH_DIR:-}" ] || [ "${OD_BENCH_KEEP:-0}" = 1 ] || rm -rf "$P"
}
trap cleanup EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$P/service.log" && break; sleep 0.1; done
grep -q "listening on" "$P/service.log" || { cat "$P/service.log" >&2; exit 1; }

export OD_HOST_DATA=$P/data OD_SERVICE_URL=$URL OD_PLUGIN_PATH=$T/libonline_desktop.so
export OD_ONLINE_PASSWORD="correct horse battery staple"
H=$T/host-sim
"$H" init --force --records "$RECORDS" > /dev/null
"$H" licence issue --out "$P/lic.json" > /dev/null
"$H" licence add "$P/lic.json" > /dev/null
"$H" licence bind --company "Nordlys Handel AS" > /dev/null

json() { curl -sf -X POST "$URL$1" -H 'Content-Type: application/json' -d "$2"; }
json /api/v1/accounts '{"email": "bench@example.com"}' > /dev/null
MAIL=""
for _ in $(seq 1 100); do
    MAIL="$(ls -t "$P"/online/outbox/*.eml 2>/dev/null | head -n 1 || true)"
    [ -n "$MAIL" ] && break
    sleep 0.1
done
TOKEN="$(grep -o 'token=[A-Za-z0-9_-]*' "$MAIL" | head -n 1 | cut -d= -f2)"
json /api/v1/accounts/verify "{\"token\": \"$TOKEN\", \"password\": \"$OD_ONLINE_PASSWORD\"}" > /dev/null
"$H" sync connect --email bench@example.com > /dev/null

# Runs the agent until it reports `state running`; WALL is its time.
agent_until_running() {
    local start
    start=$(date +%s.%N)
    "$H" agent --now > "$1" 2>&1 &
    APID=$!
    until grep -q "state running" "$1" 2>/dev/null; do
        if ! kill -0 "$APID" 2>/dev/null; then cat "$1" >&2; exit 1; fi
        sleep 0.1
    done
    WALL=$(echo "$(date +%s.%N) - $start" | bc)
}
stop_agent() { kill -TERM "$APID"; wait "$APID" || true; APID=; }
# Online rows of the company (all, live): a second copy would add rows.
online_counts() {
    sqlite3 "$P/online/online.db" "SELECT count(*), sum(deleted = 0) FROM sync_records"
}

agent_until_running "$P/agent-first.log"
stop_agent
echo "first sync (not timed): $WALL s"
BEFORE=$(online_counts)

# The add-on folder lost: <data>/online-desktop/<computer id>/<company id>.
FOLDERS=("$P"/data/online-desktop/*/*/)
[ "${#FOLDERS[@]}" = 1 ] && [ -e "${FOLDERS[0]}state.db" ] \
    || { echo "expected one add-on folder with state.db: ${FOLDERS[*]}" >&2; exit 1; }
rm -rf "${FOLDERS[0]}"
SC_START=$(date +%s.%N)
"$H" settings sync-computer --email bench@example.com > "$P/sync-computer.log" 2>&1 \
    || { cat "$P/sync-computer.log" >&2; exit 1; }
echo "settings sync-computer: $(echo "$(date +%s.%N) - $SC_START" | bc) s"

agent_until_running "$P/agent.log"
echo "takeover wall time (agent start to running): $WALL s"
echo "records/s (demo company records / wall time): $(echo "$RECORDS / $WALL" | bc)"
echo "agent (host + plugin) peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$APID/status")"
echo "service peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$SPID/status")"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
stop_agent
AFTER=$(online_counts)
echo "online records (rows|live) before: $BEFORE, after: $AFTER"
[ "$BEFORE" = "$AFTER" ] || { echo "the online records changed: something was sent twice" >&2; exit 1; }
"$H" sync history > "$P/history.txt"
sed -n 1,20p "$P/history.txt"
grep -q takeover "$P/history.txt" || { echo "no takeover run in sync history" >&2; exit 1; }
