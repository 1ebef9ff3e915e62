# Shared set-up of the end-to-end benchmarks (bench/first-sync.sh,
# bench/takeover.sh); sourced, not run. Expects RECORDS and BENCH_NAME.
# Starts the release service on a free port (OD_BENCH_PORT), makes a
# host-sim installation whose demo company has RECORDS records, licenses it,
# creates and verifies an Online ID through the API and connects the
# company (`host-sim sync connect`). Defines agent_until_running,
# stop_agent and report. Everything goes in P (OD_BENCH_DIR, default a new
# temporary folder removed at the end unless OD_BENCH_KEEP=1).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
T=$ROOT/target/release
for binary in online-desktop host-sim libonline_desktop.so; do
    [ -e "$T/$binary" ] || { echo "missing $T/$binary: build the release binaries first" >&2; exit 2; }
done
P="${OD_BENCH_DIR:-$(mktemp -d "/tmp/od-$BENCH_NAME.XXXXXX")}"
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
INIT_START=$(date +%s.%N)
"$H" init --force --records "$RECORDS" > /dev/null
echo "host-sim init --records $RECORDS: $(echo "$(date +%s.%N) - $INIT_START" | bc) s"
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

# The figures of the timed run ($1 names it); the agent still runs.
report() {
    echo "$1 wall time (agent start to running): $WALL s"
    echo "records/s (demo company records / wall time): $(echo "$RECORDS / $WALL" | bc)"
    echo "agent (host + plugin) peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$APID/status")"
    echo "service peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$SPID/status")"
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}
