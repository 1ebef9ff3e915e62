#!/usr/bin/env bash
# The first synchronisation, end to end (docs/PERFORMANCE.md, "First
# synchronisation (issue 4)"): the release service, a host-sim installation
# whose demo company has RECORDS records, an Online ID made through the API,
# `host-sim sync connect`, then `host-sim agent --now` (host + plugin in one
# process) until the first sync is done. Prints the wall time, records per
# second, and the peak RSS of the agent and of the service.
#
# Builds nothing: first
#   cargo build --release -p host-sim -p online-desktop -p od-online
# Usage: bench/first-sync.sh [RECORDS]   (default 200000)
# Set-up: bench/common.sh.
# Environment: OD_BENCH_DIR (default: a new temporary folder, removed at the
# end unless OD_BENCH_KEEP=1), OD_BENCH_PORT (default: a free port).
set -euo pipefail
RECORDS="${1:-200000}"
BENCH_NAME=first-sync
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

agent_until_running "$P/agent.log"
# Every record of every entity: what the history counted for the run.
report "first sync"
stop_agent
"$H" sync history > "$P/history.txt"
sed -n 1,20p "$P/history.txt"
