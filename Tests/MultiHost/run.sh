#!/usr/bin/env bash
# Multi-host broadcast test for `pheromones node` (not part of `swift test`: it needs root).
#
# Builds a private network of network namespaces on this machine: one namespace holds a bridge,
# and each of N host namespaces has a veth whose other end is a port of that bridge. One
# `pheromones node` runs per host; the nodes peer along a seeded random graph (a ring plus random
# chords, so it is connected). Then, per broadcast mode:
#   phase 1  K broadcasts from random hosts: every other host must deliver each exactly once;
#   phase 2  the veths of a few hosts are cut (`ip link set ... down` in the bridge namespace);
#            once their neighbours have noticed, K broadcasts from hosts of the largest connected
#            part must reach every host of that part exactly once (and none of the cut hosts);
#   phase 3  the links are healed; once every node has its peers back, K broadcasts must reach
#            every host exactly once, and the counters must show the peers that went down, came
#            up again and were redialled.
# It prints a table per mode and one JSON line per mode, and exits non-zero if a check failed.
# All traffic stays in the namespaces it made; it removes them (and stale ones of earlier runs)
# and kills the nodes on exit, interrupt or termination. See Docs/MultiHost.md.
set -euo pipefail

readonly PREFIX="phmh"
hosts=20
mode="both"
degree=4
broadcasts=10
cut=3
seed=1
binary=""
port=7000
hop_limit=16
subnet="10.88.0"
timeout=40
keep_logs=""

usage() {
    cat <<EOF
usage: $0 [options]   (as root)
  -n, --hosts N          hosts, one namespace and one node each (default $hosts; 3 to 250)
  -m, --mode MODE        flood, gossip or both (default $mode)
  -d, --degree D         average number of peers per host: a ring plus random chords (default $degree)
  -k, --broadcasts K     broadcasts per phase (default $broadcasts)
  -c, --cut C            hosts whose link is cut in phase 2 (default $cut)
  -s, --seed S           seeds the topology, the choice of hosts and the nodes (default $seed)
  -b, --binary PATH      the pheromones binary (default: swift build --product pheromones)
      --hop-limit H      the broadcasts' hop limit (default $hop_limit)
      --timeout SECONDS  the longest wait for any one condition (default $timeout)
      --keep-logs DIR    copy the nodes' logs there
  -h, --help
EOF
}

die() { echo "run.sh: $*" >&2; exit 2; }

while (($# > 0)); do
    case "$1" in
        -n|--hosts) hosts="${2:?}"; shift 2 ;;
        -m|--mode) mode="${2:?}"; shift 2 ;;
        -d|--degree) degree="${2:?}"; shift 2 ;;
        -k|--broadcasts) broadcasts="${2:?}"; shift 2 ;;
        -c|--cut) cut="${2:?}"; shift 2 ;;
        -s|--seed) seed="${2:?}"; shift 2 ;;
        -b|--binary) binary="${2:?}"; shift 2 ;;
        --hop-limit) hop_limit="${2:?}"; shift 2 ;;
        --timeout) timeout="${2:?}"; shift 2 ;;
        --keep-logs) keep_logs="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

is_number() { [[ "$1" =~ ^[0-9]+$ ]]; }
for value in "$hosts" "$degree" "$broadcasts" "$cut" "$seed" "$hop_limit" "$timeout"; do
    is_number "$value" || die "'$value' is not a whole number"
done
((hosts >= 3 && hosts <= 250)) || die "--hosts wants 3 to 250"
((degree >= 2 && degree < hosts)) || die "--degree wants 2 to hosts - 1"
((cut < hosts / 2)) || die "--cut wants fewer than half the hosts"
((hop_limit >= 1 && hop_limit <= 255)) || die "--hop-limit wants 1 to 255"
case "$mode" in
    flood|gossip) modes=("$mode") ;;
    both) modes=(flood gossip) ;;
    *) die "--mode wants flood, gossip or both" ;;
esac
((EUID == 0)) || die "needs root (network namespaces)"
command -v ip >/dev/null || die "needs iproute2's ip"

# ---------------------------------------------------------------------------------------------
# Names, cleanup

run_id="$PREFIX-$$"
bridge_ns="$run_id-br"
work="$(mktemp -d "/tmp/$run_id.XXXXXX")"
namespaces=()
node_pids=()
node_fds=()
failures=0

host_ns() { printf '%s-h%02d' "$run_id" "$1"; }
host_name() { printf 'h%02d' "$1"; }
host_ip() { printf '%s.%d' "$subnet" $(($1 + 1)); }

# Ends the nodes of this run: asks them to quit, then SIGTERM, then SIGKILL, each bounded.
stop_nodes() {
    local i pid deadline
    for i in "${!node_fds[@]}"; do
        { printf 'quit\n' >&"${node_fds[$i]}"; } 2>/dev/null || true
    done
    deadline=$((SECONDS + 3))
    for pid in "${node_pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 3))
    for pid in "${node_pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    local fd
    for fd in "${node_fds[@]}"; do
        exec {fd}>&- || true
    done
    node_pids=()
    node_fds=()
}

# Deletes a namespace, killing whatever still runs in it first.
delete_namespace() {
    local ns="$1" pid
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_nodes
    local ns
    # The host namespaces first: their veths' peers in the bridge namespace go with them.
    for ((index = ${#namespaces[@]} - 1; index >= 0; index--)); do delete_namespace "${namespaces[$index]}"; done
    if [[ -n "$keep_logs" ]]; then
        mkdir -p "$keep_logs" && cp -r "$work"/. "$keep_logs"/ && echo "logs kept in $keep_logs"
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Namespaces and work directories of earlier runs of this script whose process is gone (killed
# with SIGKILL, say).
clean_stale() {
    local ns pid directory
    for ns in $(ip netns list | awk '{ print $1 }'); do
        [[ "$ns" =~ ^$PREFIX-([0-9]+)- ]] || continue
        pid="${BASH_REMATCH[1]}"
        if [[ "$pid" != "$$" ]] && ! kill -0 "$pid" 2>/dev/null; then
            echo "removing stale namespace $ns"
            delete_namespace "$ns"
        fi
    done
    for directory in /tmp/"$PREFIX"-*.*; do
        [[ -d "$directory" && "$directory" =~ ^/tmp/$PREFIX-([0-9]+)\. ]] || continue
        pid="${BASH_REMATCH[1]}"
        if [[ "$pid" != "$$" ]] && ! kill -0 "$pid" 2>/dev/null; then rm -rf "$directory"; fi
    done
}

# ---------------------------------------------------------------------------------------------
# Waiting: bounded polling, never a blind long sleep

# Polls `command...` every 0.1 s until it succeeds (0) or `seconds` pass (1).
wait_until() {
    local seconds="$1"; shift
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

now() { date +%s.%N; }
# A measured time for the table: "N s", or "not within T s" for a wait that ran out (null).
shown() { if [[ "$1" == null ]]; then echo "not within $timeout s"; else echo "$1 s"; fi; }
elapsed_since() { awk -v start="$1" -v end="$(now)" 'BEGIN { printf "%.1f", end - start }'; }

# ---------------------------------------------------------------------------------------------
# The topology: a ring plus seeded random chords, so that it is connected

declare -A edge=()
declare -a neighbours=()

add_edge() {
    local a="$1" b="$2"
    ((a < b)) || { local t="$a"; a="$b"; b="$t"; }
    [[ -z "${edge[$a-$b]:-}" ]] || return 1
    edge[$a-$b]=1
    neighbours[a]="${neighbours[a]:-} $b"
    neighbours[b]="${neighbours[b]:-} $a"
}

make_topology() {
    RANDOM="$seed"
    local i a b chords attempts=0
    for ((i = 0; i < hosts; i++)); do add_edge "$i" $(((i + 1) % hosts)) || true; done
    chords=$((hosts * (degree - 2) / 2))
    while ((chords > 0 && attempts < 100 * hosts)); do
        attempts=$((attempts + 1))
        a=$((RANDOM % hosts)); b=$((RANDOM % hosts))
        ((a != b)) || continue
        add_edge "$a" "$b" || continue
        chords=$((chords - 1))
    done
}

degree_of() { local list; read -r -a list <<<"${neighbours[$1]}"; echo "${#list[@]}"; }

# The largest connected part of the graph without the hosts in `down` (an associative array name).
largest_part() {
    local -n skip="$1"
    local -A seen=()
    local best="" start queue current next
    for ((start = 0; start < hosts; start++)); do
        [[ -z "${skip[$start]:-}" && -z "${seen[$start]:-}" ]] || continue
        local part="" queue=("$start")
        seen[$start]=1
        while ((${#queue[@]} > 0)); do
            current="${queue[0]}"; queue=("${queue[@]:1}")
            part="$part $current"
            for next in ${neighbours[current]}; do
                [[ -z "${skip[$next]:-}" && -z "${seen[$next]:-}" ]] || continue
                seen[$next]=1
                queue+=("$next")
            done
        done
        local size_part size_best
        read -r -a size_part <<<"$part"
        read -r -a size_best <<<"$best"
        ((${#size_part[@]} > ${#size_best[@]})) && best="$part"
    done
    echo "$best"
}

# ---------------------------------------------------------------------------------------------
# The network: a bridge namespace, and a veth from it into each host namespace

make_network() {
    ip netns add "$bridge_ns"
    namespaces+=("$bridge_ns")
    ip -n "$bridge_ns" link set lo up
    ip -n "$bridge_ns" link add br0 type bridge
    ip -n "$bridge_ns" link set br0 up
    local i ns
    for ((i = 0; i < hosts; i++)); do
        ns="$(host_ns "$i")"
        ip netns add "$ns"
        namespaces+=("$ns")
        ip -n "$ns" link set lo up
        # Made in the bridge namespace with its peer put straight into the host's: nothing
        # passes through the root namespace.
        ip -n "$bridge_ns" link add "v$i" type veth peer name eth0 netns "$ns"
        ip -n "$bridge_ns" link set "v$i" master br0 up
        ip -n "$ns" addr add "$(host_ip "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
    done
}

set_link() { ip -n "$bridge_ns" link set "v$1" "$2"; }

# ---------------------------------------------------------------------------------------------
# The nodes

log_of() { echo "$work/$current_mode/$(host_name "$1").log"; }
say_to() { printf '%s\n' "$2" >&"${node_fds[$1]}"; }

start_nodes() {
    local i fifo log fd
    mkdir -p "$work/$current_mode"
    for ((i = 0; i < hosts; i++)); do
        fifo="$work/$current_mode/$(host_name "$i").in"
        log="$(log_of "$i")"
        mkfifo "$fifo"
        # Read-write, so that opening it does not wait for the node, and the node never sees
        # the end of its input while the script runs.
        exec {fd}<>"$fifo"
        node_fds[i]="$fd"
        ip netns exec "$(host_ns "$i")" "$binary" node --name "$(host_name "$i")" \
            --listen "$(host_ip "$i"):$current_port" --broadcast "$current_mode" \
            --reconnect-delay 0.2 --maximum-reconnect-delay 1 --keepalive-interval 0.5 --keepalive-timeout 2 \
            --seed $((seed * 1000 + i)) <"$fifo" >"$log" 2>&1 &
        node_pids[i]=$!
    done
}

all_listening() {
    local i
    for ((i = 0; i < hosts; i++)); do grep -q " listens on " "$(log_of "$i")" || return 1; done
}

# Each edge is dialled once, by its lower-numbered host (which then redials it after a cut).
connect_nodes() {
    local key a b
    for key in "${!edge[@]}"; do
        a="${key%-*}"; b="${key#*-}"
        say_to "$a" "add $(host_name "$b") $(host_ip "$b"):$current_port"
    done
}

# Asks every node `command` and waits until each has answered with one more `pattern` line than
# before; the answers are then in last_answer[i].
declare -a last_answer=()
count_lines() { grep -c -- "$2" "$(log_of "$1")" || true; }
answered() {
    local i
    for ((i = 0; i < hosts; i++)); do
        (($(count_lines "$i" "$pattern") > before[i])) || return 1
    done
}
ask_all() {
    local command="$1" i
    pattern="$2"
    before=()
    for ((i = 0; i < hosts; i++)); do before[i]=$(count_lines "$i" "$pattern"); say_to "$i" "$command"; done
    wait_until 10 answered || { echo "   (not every node answered '$command' within 10 s)" >&2; return 1; }
    for ((i = 0; i < hosts; i++)); do last_answer[i]="$(grep -- "$pattern" "$(log_of "$i")" | tail -n 1)"; done
}

# Whether every host i has connected[i] peers connected (`expected` names an array).
peers_as_expected() {
    local -n wanted="$1"
    ask_all peers "peers: connected " || return 1
    local i got
    for ((i = 0; i < hosts; i++)); do
        got="$(sed -E 's/.*peers: connected ([0-9]+) of.*/\1/' <<<"${last_answer[i]}")"
        [[ "$got" == "${wanted[i]}" ]] || return 1
    done
}

# The counters of every node: counter[i,key].
declare -A counter=()
read_counters() {
    ask_all stats "stats: counters " || return 1
    local i pair
    for ((i = 0; i < hosts; i++)); do
        for pair in ${last_answer[i]#*stats: counters }; do counter[$i,${pair%%=*}]="${pair#*=}"; done
    done
}
counter_sum() {
    local key i total=0
    for key in "$@"; do
        for ((i = 0; i < hosts; i++)); do total=$((total + ${counter[$i,$key]:-0})); done
    done
    echo "$total"
}

# Gossip's own traffic: its control messages, and their bytes.
readonly gossip_messages=(gossip-ihave-sent gossip-iwant-sent gossip-idontwant-sent gossip-mesh-control-sent)
readonly gossip_bytes=(gossip-ihave-bytes-sent gossip-iwant-bytes-sent gossip-idontwant-bytes-sent gossip-mesh-control-bytes-sent)

# ---------------------------------------------------------------------------------------------
# Broadcasting and checking delivery

# How many times host i delivered the broadcast whose data is `body`.
deliveries() { grep -c -- " data=$2\$" "$(log_of "$1")" || true; }

# Sends one broadcast from each of `senders` (host numbers), bodies "$current_mode-$phase-N".
declare -a sent_bodies=() sent_from=()
broadcast_from() {
    local phase="$1"; shift
    current_phase="$phase"
    local n=0 sender body
    sent_bodies=(); sent_from=()
    for sender in "$@"; do
        body="$current_mode-$phase-$n"
        say_to "$sender" "broadcast --hop-limit $hop_limit noticereq $body"
        sent_bodies+=("$body"); sent_from+=("$sender")
        n=$((n + 1))
    done
}

# Whether every host of `receivers` (a list) has as many of this phase's broadcasts as were sent
# by others: one grep per host and poll, so that the poll is quick enough to time delivery by.
# (A host that delivered one twice and missed another would pass here; check_delivery counts
# each body.)
all_delivered() {
    local receivers=("$@") k host expected
    for host in "${receivers[@]}"; do
        expected=0
        for k in "${!sent_from[@]}"; do [[ "${sent_from[k]}" == "$host" ]] || expected=$((expected + 1)); done
        (($(grep -c -- " data=$current_mode-$current_phase-[0-9]*\$" "$(log_of "$host")" || true) >= expected)) || return 1
    done
}

# Checks coverage and exactly-once delivery of the sent broadcasts among `receivers`, and that
# hosts outside them delivered none. Sets coverage (percent), duplicate_deliveries, outside.
check_delivery() {
    local phase="$1"; shift
    local receivers=("$@") expected=0 reached=0 k host got
    local -A inside=()
    for host in "${receivers[@]}"; do inside[$host]=1; done
    duplicate_deliveries=0; outside=0
    for k in "${!sent_bodies[@]}"; do
        for ((host = 0; host < hosts; host++)); do
            [[ "$host" != "${sent_from[k]}" ]] || continue
            got="$(deliveries "$host" "${sent_bodies[k]}")"
            if [[ -n "${inside[$host]:-}" ]]; then
                expected=$((expected + 1))
                ((got >= 1)) && reached=$((reached + 1))
                ((got > 1)) && duplicate_deliveries=$((duplicate_deliveries + got - 1))
            else
                outside=$((outside + got))
            fi
        done
    done
    coverage="$(awk -v r="$reached" -v e="$expected" 'BEGIN { printf "%.1f", e ? 100 * r / e : 100 }')"
    ((reached == expected)) || fail "$current_mode $phase: coverage $coverage% ($reached of $expected deliveries)"
    ((duplicate_deliveries == 0)) || fail "$current_mode $phase: $duplicate_deliveries broadcasts delivered more than once"
    ((outside == 0)) || fail "$current_mode $phase: $outside deliveries on hosts that were cut off"
}


# Broadcasts K messages from random hosts of `pool`, waits (bounded) for every receiver to have
# them, then gives stragglers (duplicates) a moment and checks.
run_phase() {
    local phase="$1" count="$2"; shift 2
    local receivers=("$@") senders=() i
    # In this shell, not a subshell: the seeded RANDOM sequence must go on from here.
    for ((i = 0; i < count; i++)); do senders+=("${receivers[RANDOM % ${#receivers[@]}]}"); done
    broadcast_from "$phase" "${senders[@]}"
    local start
    start="$(now)"
    wait_until "$timeout" all_delivered "${receivers[@]}" || true
    phase_seconds="$(elapsed_since "$start")"
    sleep 0.5
    check_delivery "$phase" "${receivers[@]}"
}

# ---------------------------------------------------------------------------------------------
# One mode

run_mode() {
    current_mode="$1"
    failures_before="$failures"
    # The same draws (cut hosts, senders) in every mode, so that the modes are compared on one run.
    RANDOM=$((seed + 1))
    local i all=() down_expected=() links=${#edge[@]}
    # degrees is read through a name reference, by peers_as_expected.
    local degrees=()
    for ((i = 0; i < hosts; i++)); do
        all+=("$i")
        # shellcheck disable=SC2034
        degrees[i]="$(degree_of "$i")"
    done
    echo "== $current_mode: $hosts hosts, $links links, logs in $work/$current_mode"

    start_nodes
    wait_until "$timeout" all_listening || { fail "$current_mode: not every node listens"; stop_nodes; return; }
    local start
    start="$(now)"
    connect_nodes
    wait_until "$timeout" peers_as_expected degrees || { fail "$current_mode: the peers did not all connect"; stop_nodes; return; }
    local connect_seconds
    connect_seconds="$(elapsed_since "$start")"
    echo "   all $links links up in ${connect_seconds} s"
    read_counters || fail "$current_mode: no counters"
    local base_duplicates base_copies base_control base_control_bytes base_served base_pulls_failed
    base_duplicates="$(counter_sum duplicates-dropped)"
    base_copies="$(counter_sum broadcast-copies-received)"
    base_control="$(counter_sum "${gossip_messages[@]}")"
    base_control_bytes="$(counter_sum "${gossip_bytes[@]}")"
    base_served="$(counter_sum gossip-iwant-served)"
    base_pulls_failed="$(counter_sum gossip-pulls-failed)"

    # Phase 1: the whole network.
    run_phase p1 "$broadcasts" "${all[@]}"
    local coverage1="$coverage" seconds1="$phase_seconds"
    echo "   phase 1: coverage $coverage1% in ${seconds1} s"
    read_counters || fail "$current_mode: no counters"
    local duplicates1=$(($(counter_sum duplicates-dropped) - base_duplicates))
    local peers_down0 peers_up0 reconnects0
    peers_down0="$(counter_sum peers-down)"; peers_up0="$(counter_sum peers-up)"; reconnects0="$(counter_sum reconnects)"

    # Phase 2: cut the links of `cut` random hosts.
    local -A is_cut=()
    local cut_hosts=() host next cut_links=0
    while ((${#cut_hosts[@]} < cut)); do
        host=$((RANDOM % hosts))
        [[ -z "${is_cut[$host]:-}" ]] || continue
        is_cut[$host]=1; cut_hosts+=("$host")
    done
    for key in "${!edge[@]}"; do
        [[ -n "${is_cut[${key%-*}]:-}" || -n "${is_cut[${key#*-}]:-}" ]] && cut_links=$((cut_links + 1))
    done
    for ((host = 0; host < hosts; host++)); do
        if [[ -n "${is_cut[$host]:-}" ]]; then down_expected[host]=0; continue; fi
        down_expected[host]=0
        for next in ${neighbours[host]}; do
            [[ -n "${is_cut[$next]:-}" ]] || down_expected[host]=$((down_expected[host] + 1))
        done
    done
    local majority
    read -r -a majority <<<"$(largest_part is_cut)"
    echo "   phase 2: cutting $(for h in "${cut_hosts[@]}"; do printf '%s ' "$(host_name "$h")"; done)($cut_links links); the largest part left has ${#majority[@]} hosts"
    start="$(now)"
    for host in "${cut_hosts[@]}"; do set_link "$host" down; done
    local detect_seconds="null"
    if wait_until "$timeout" peers_as_expected down_expected; then
        detect_seconds="$(elapsed_since "$start")"
    else
        fail "$current_mode: the cut was not noticed by every node"
    fi
    run_phase p2 "$broadcasts" "${majority[@]}"
    local coverage2="$coverage" outside2="$outside" seconds2="$phase_seconds"
    echo "   phase 2: cut noticed in $(shown "$detect_seconds"); coverage of the largest part $coverage2%, deliveries on cut-off hosts $outside2"

    # Phase 3: heal, wait for every link to be back, broadcast to everyone.
    start="$(now)"
    for host in "${cut_hosts[@]}"; do set_link "$host" up; done
    local heal_seconds="null"
    if wait_until "$timeout" peers_as_expected degrees; then
        heal_seconds="$(elapsed_since "$start")"
    else
        fail "$current_mode: the peers did not all reconnect after the heal"
    fi
    run_phase p3 "$broadcasts" "${all[@]}"
    local coverage3="$coverage" seconds3="$phase_seconds"
    echo "   phase 3: reconnected in $(shown "$heal_seconds"); coverage $coverage3%"

    read_counters || fail "$current_mode: no counters"
    local duplicates delivered peers_down peers_up reconnects keepalive_timeouts
    duplicates=$(($(counter_sum duplicates-dropped) - base_duplicates))
    peers_down=$(($(counter_sum peers-down) - peers_down0))
    peers_up=$(($(counter_sum peers-up) - peers_up0))
    reconnects=$(($(counter_sum reconnects) - reconnects0))
    keepalive_timeouts="$(counter_sum keepalive-timeouts)"
    local copies control control_bytes served pulls_failed
    copies=$(($(counter_sum broadcast-copies-received) - base_copies))
    control=$(($(counter_sum "${gossip_messages[@]}") - base_control))
    control_bytes=$(($(counter_sum "${gossip_bytes[@]}") - base_control_bytes))
    served=$(($(counter_sum gossip-iwant-served) - base_served))
    pulls_failed=$(($(counter_sum gossip-pulls-failed) - base_pulls_failed))
    ((peers_down >= 2 * cut_links)) || fail "$current_mode: $peers_down peers went down; the cut should take down at least $((2 * cut_links))"
    ((peers_up >= 2 * cut_links)) || fail "$current_mode: $peers_up peers came up again; the heal should bring back at least $((2 * cut_links))"
    ((reconnects >= cut_links)) || fail "$current_mode: $reconnects redials; each of the $cut_links cut links should have had one at least"
    # Broadcast deliveries, all phases: every delivered line of this mode's broadcasts.
    delivered=0
    for ((host = 0; host < hosts; host++)); do
        delivered=$((delivered + $(grep -c -- "delivered broadcast .* data=$current_mode-" "$(log_of "$host")" || true)))
    done
    local total_broadcasts=$((3 * broadcasts))
    local per_node share per_node1
    per_node="$(awk -v d="$duplicates" -v n="$hosts" -v b="$total_broadcasts" 'BEGIN { printf "%.2f", d / (n * b) }')"
    per_node1="$(awk -v d="$duplicates1" -v n="$hosts" -v b="$broadcasts" 'BEGIN { printf "%.2f", d / (n * b) }')"
    share="$(awk -v d="$duplicates" -v r="$delivered" 'BEGIN { printf "%.1f", (d + r) ? 100 * d / (d + r) : 0 }')"
    stop_nodes

    printf '\n%-34s %s\n' "mode" "$current_mode"
    printf '%-34s %s\n' "hosts / links" "$hosts / $links (average degree $(awk -v l="$links" -v n="$hosts" 'BEGIN { printf "%.1f", 2 * l / n }'))"
    printf '%-34s %s\n' "broadcasts per phase" "$broadcasts (hop limit $hop_limit)"
    printf '%-34s %s\n' "connect (all links up)" "$connect_seconds s"
    printf '%-34s %s\n' "phase 1 coverage" "$coverage1% (all delivered in $seconds1 s)"
    printf '%-34s %s\n' "phase 1 duplicates per node" "$per_node1 per broadcast"
    printf '%-34s %s\n' "phase 2 cut" "${#cut_hosts[@]} hosts, $cut_links links, noticed in $(shown "$detect_seconds")"
    printf '%-34s %s\n' "phase 2 coverage (largest part)" "$coverage2% of ${#majority[@]} hosts; cut-off hosts reached $outside2 times"
    printf '%-34s %s\n' "phase 2 all delivered in" "$seconds2 s"
    printf '%-34s %s\n' "phase 3 reconnect" "$(shown "$heal_seconds")"
    printf '%-34s %s\n' "phase 3 coverage" "$coverage3% (all delivered in $seconds3 s)"
    printf '%-34s %s\n' "broadcasts delivered (all phases)" "$delivered"
    printf '%-34s %s\n' "duplicates dropped (all phases)" "$duplicates ($per_node per node per broadcast, $share% of copies received)"
    printf '%-34s %s\n' "broadcast copies received" "$copies"
    printf '%-34s %s\n' "gossip control sent" "$control messages, $control_bytes bytes; IWANT served $served, pulls failed $pulls_failed"
    printf '%-34s %s\n' "peers down / up / redials" "$peers_down / $peers_up / $reconnects (keepalive timeouts $keepalive_timeouts)"
    printf '\n'
    printf '{"mode":"%s","hosts":%d,"links":%d,"broadcasts_per_phase":%d,"hop_limit":%d,"seed":%d,' \
        "$current_mode" "$hosts" "$links" "$broadcasts" "$hop_limit" "$seed"
    printf '"connect_s":%s,"coverage_p1":%s,"coverage_p2_majority":%s,"majority_hosts":%d,"cut_hosts":%d,"cut_links":%d,' \
        "$connect_seconds" "$coverage1" "$coverage2" "${#majority[@]}" "${#cut_hosts[@]}" "$cut_links"
    printf '"delivery_s_p1":%s,"delivery_s_p2":%s,"delivery_s_p3":%s,' "$seconds1" "$seconds2" "$seconds3"
    printf '"cut_off_deliveries":%d,"detect_s":%s,"reconnect_s":%s,"coverage_p3":%s,"delivered":%d,' \
        "$outside2" "$detect_seconds" "$heal_seconds" "$coverage3" "$delivered"
    printf '"duplicates":%d,"duplicates_per_node_per_broadcast":%s,"duplicates_p1_per_node_per_broadcast":%s,"duplicate_share_pct":%s,' \
        "$duplicates" "$per_node" "$per_node1" "$share"
    printf '"copies_received":%d,"gossip_control_sent":%d,"gossip_control_bytes":%d,"iwant_served":%d,"pulls_failed":%d,' \
        "$copies" "$control" "$control_bytes" "$served" "$pulls_failed"
    printf '"peers_down":%d,"peers_up":%d,"reconnects":%d,"keepalive_timeouts":%d,"failures":%d}\n' \
        "$peers_down" "$peers_up" "$reconnects" "$keepalive_timeouts" "$((failures - failures_before))"
}

# ---------------------------------------------------------------------------------------------
# Main

if [[ -z "$binary" ]]; then
    repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    (cd "$repository" && swift build --product pheromones >&2)
    binary="$(cd "$repository" && swift build --show-bin-path)/pheromones"
fi
[[ -x "$binary" ]] || die "no executable at $binary"

clean_stale
root_links_before="$(ip -o link show | awk -F': ' '{ print $2 }' | sort)"
make_topology
make_network
root_links_after="$(ip -o link show | awk -F': ' '{ print $2 }' | sort)"
[[ "$root_links_before" == "$root_links_after" ]] || fail "the root namespace's interfaces changed"

mode_index=0
for current_mode in "${modes[@]}"; do
    current_port=$((port + mode_index))
    run_mode "$current_mode"
    mode_index=$((mode_index + 1))
done

if ((failures > 0)); then
    echo "FAILED: $failures checks" >&2
    exit 1
fi
echo "PASSED"
