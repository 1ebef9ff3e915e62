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
# Set-up: bench/common.sh. Needs the sqlite3 command.
# Environment: OD_BENCH_DIR (default: a new temporary folder, removed at the
# end unless OD_BENCH_KEEP=1), OD_BENCH_PORT (default: a free port).
set -euo pipefail
RECORDS="${1:-200000}"
BENCH_NAME=takeover
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

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
report "takeover"
stop_agent
AFTER=$(online_counts)
echo "online records (rows|live) before: $BEFORE, after: $AFTER"
[ "$BEFORE" = "$AFTER" ] || { echo "the online records changed: something was sent twice" >&2; exit 1; }
"$H" sync history > "$P/history.txt"
sed -n 1,20p "$P/history.txt"
grep -q takeover "$P/history.txt" || { echo "no takeover run in sync history" >&2; exit 1; }
