# lib.sh: the shell code common to the uprobectl example scripts
# (func-latency, lock-holders, malloc-free-by-process), sourced by each
# from its own directory:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It defines functions and variables only; it runs nothing. A script calls
# parse_args, find_tools, traps request_stop and cleanup, then
# start_tracing, start_consumer and finish. What is fixed here (never
# tracing itself) is fixed in all of them.
# shellcheck shell=bash

prog=${0##*/}
say() { printf '%s: %s\n' "$prog" "$*" >&2; }
# usage: the script's header comment, from its second line to the first
# line that is not a comment.
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
usage_error() { say "$*"; say "see '$prog --help'"; exit 2; }

# find_tools: uprobectl ($UPROBECTL, else in PATH, else this repository's
# bin/, found from this file's place), jq and awk.
find_tools() {
  local repo_bin
  repo_bin="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bin/uprobectl"
  if [ -n "${UPROBECTL:-}" ]; then
    uprobectl=$UPROBECTL
  elif command -v uprobectl >/dev/null; then
    uprobectl=$(command -v uprobectl)
  elif [ -x "$repo_bin" ]; then
    uprobectl=$repo_bin
  else
    say "uprobectl not found: set UPROBECTL, put it in PATH, or build it: go build -o bin/uprobectl ./cmd/uprobectl"
    exit 3
  fi
  [ -x "$uprobectl" ] || { say "$uprobectl is not an executable"; exit 3; }
  command -v jq >/dev/null || { say "jq is missing: apt-get install jq (scripts/setup installs it)"; exit 3; }
  command -v awk >/dev/null || { say "awk is missing"; exit 3; }
  jq_cmd=(jq) awk_cmd=(awk)
}

# private_tools DIR: without --pid every process that maps the probed file
# is traced, jq and awk too, and jq's own calls for each hit it reads would
# be hits again: a loop (tracing malloc, jq alone made 150 000 calls a
# second). So they run from private copies of themselves, their libraries
# and the loader in DIR: other inodes, which uprobes on the originals do not
# touch. If that fails they run as they are (their hits are still dropped).
private_tools() {
  local dir=$1 name path f loader="" deps libs
  mkdir -p "$dir"
  for name in jq awk; do
    path=$(command -v "$name")
    cp -L "$path" "$dir/$name" 2>/dev/null || { say "warning: cannot copy $path: its own calls will be traced"; return 0; }
    deps=$(ldd "$path" 2>/dev/null) || continue # static
    mapfile -t libs < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$deps")
    for f in "${libs[@]}"; do
      [ -e "$dir/${f##*/}" ] || cp -L "$f" "$dir/" 2>/dev/null || { say "warning: cannot copy $f: jq and awk will be traced"; return 0; }
      case ${f##*/} in ld-linux*) loader=$dir/${f##*/} ;; esac
    done
  done
  if [ -z "$loader" ]; then
    jq_cmd=("$dir/jq") awk_cmd=("$dir/awk")
  elif "$loader" --library-path "$dir" "$dir/jq" -n 1 >/dev/null 2>&1 &&
    "$loader" --library-path "$dir" "$dir/awk" 'BEGIN { exit 0 }' >/dev/null 2>&1; then
    jq_cmd=("$loader" --library-path "$dir" "$dir/jq")
    awk_cmd=("$loader" --library-path "$dir" "$dir/awk")
  else
    say "warning: cannot run jq and awk from copies in $dir (noexec?): their own calls will be traced"
  fi
}

stop_requested=0 up_pid='' consumer_pid='' tmp='' up_rc=0 consumer_rc=0

# request_stop: Ctrl-C, SIGTERM or SIGHUP. uprobectl gets SIGINT: it
# disarms, drains, removes its events and writes its summary. jq and awk
# ignore these signals and end with the stream, so nothing is cut short.
# shellcheck disable=SC2317 # run by trap
request_stop() {
  stop_requested=1
  [ -z "$up_pid" ] || kill -INT "$up_pid" 2>/dev/null || true
}

# wait_for PID: its exit status, waiting on through trapped signals.
wait_for() {
  local rc
  while :; do
    rc=0
    wait "$1" || rc=$?
    if [ "$rc" -gt 128 ] && kill -0 "$1" 2>/dev/null; then continue; fi
    return "$rc"
  done
}

# shellcheck disable=SC2317 # run by trap
cleanup() {
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
    kill -INT "$up_pid" 2>/dev/null || true
    wait_for "$up_pid" || true
  fi
  [ -z "$tmp" ] || rm -rf "$tmp"
}

# Never tracing ourselves: without --pid every process that maps the probed
# file is traced, now or later, and any program this script ran meanwhile
# (mkfifo, mktemp, cat, sleep...) would be counted. So from uprobectl's start
# to its end the script runs only builtins and the processes whose pids awk
# drops: uprobectl, the consumer's subshell (awk after its exec) and jq, the
# last two from private copies. Everything else is done before (the fifos,
# the copies).

# start_tracing ARG...: makes $tmp with the fifos of the run (json,
# uprobectl's stream; mid, start_consumer's), starts uprobectl attach --json
# ARG... (flags, then probes; with $scope and $duration) into $tmp/json and
# reads its lines up to "ready" into $tmp/pre; returns 1 if uprobectl ended
# before (up_rc is then set). The rest of the stream is left on fd 3 for
# start_consumer. request_stop must be trapped already: a stop before
# uprobectl starts means no start.
start_tracing() {
  local line rc ready=
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/$prog.XXXXXX")
  mkfifo "$tmp/json" "$tmp/mid"
  [ ${#scope[@]} -gt 0 ] || private_tools "$tmp/tools"
  if [ "$stop_requested" = 1 ]; then up_rc=0; return 1; fi # stopped already
  "$uprobectl" attach --json "${scope[@]}" "${duration[@]}" "$@" >"$tmp/json" &
  up_pid=$!
  exec 3<"$tmp/json"
  : >"$tmp/pre"
  while :; do
    rc=0
    IFS= read -r -u 3 line || rc=$?
    if [ "$rc" -gt 128 ]; then continue; fi # a trapped signal: read on
    [ "$rc" -eq 0 ] || break
    printf '%s\n' "$line" >>"$tmp/pre"
    case $line in '{"type":"ready"'*) ready=$line; break ;; esac
  done
  if [ -z "$ready" ]; then
    exec 3<&-
    up_rc=0
    wait_for "$up_pid" || up_rc=$?
    up_pid=''
    return 1
  fi
  # A stop asked for before uprobectl was listening for it may be lost.
  [ "$stop_requested" = 0 ] || kill -INT "$up_pid" 2>/dev/null || true
  local what="probes armed"
  [[ $ready =~ \"probes\":([0-9]+) ]] && what="${BASH_REMATCH[1]} probe(s) armed"
  [[ $ready =~ \"processes\":([0-9]+) ]] && what+=" in ${BASH_REMATCH[1]} process(es)"
  [[ $ready =~ \"group\":\"([^\"]*)\" ]] && what+=" (uprobectl group ${BASH_REMATCH[1]})"
  say "$what; Ctrl-C to stop"
}

# start_consumer JQ-ARGS... -- AWK-ARGS...: runs the rest of the stream
# (after $tmp/pre) through jq JQ-ARGS into awk AWK-ARGS, awk's stdout ours
# (inherited: reopening /dev/stdout would truncate a file we write to).
# awk gets self, the pids of this script, jq, awk and uprobectl: their hits
# are to be dropped (without --pid, the copies of jq and awk are not traced,
# but before their exec the shells forked to become them are). jq's filter
# ends its output with a line "end": without it awk knows jq failed.
start_consumer() {
  local jq_args=() awk_args=()
  while [ "$1" != -- ]; do jq_args+=("$1"); shift; done
  shift
  awk_args=("$@")
  (
    trap '' INT TERM HUP
    "${jq_cmd[@]}" "${jq_args[@]}" "$tmp/pre" /dev/stdin <&3 >"$tmp/mid" &
    exec "${awk_cmd[@]}" -v self="$$ $BASHPID $! $up_pid" "${awk_args[@]}" <"$tmp/mid"
  ) &
  consumer_pid=$!
  exec 3<&-
}

# finish: waits for the consumer and uprobectl, then exits as uprobectl did,
# or 1 if jq or awk failed. A consumer that failed ends uprobectl, which may
# have nothing to write that would tell it.
finish() {
  consumer_rc=0 up_rc=0
  wait_for "$consumer_pid" || consumer_rc=$?
  [ "$consumer_rc" -eq 0 ] || kill -INT "$up_pid" 2>/dev/null || true
  wait_for "$up_pid" || up_rc=$?
  up_pid=''
  [ "$up_rc" -eq 0 ] || exit "$up_rc"
  [ "$consumer_rc" -eq 0 ] || { say "jq or awk failed (awk's exit $consumer_rc)"; exit 1; }
  exit 0
}

# parse_args ARGS...: --pid, --duration, --help; the rest into $args.
parse_args() {
  scope=() duration=() args=()
  while [ $# -gt 0 ]; do
    case $1 in
      -h | --help) usage; exit 0 ;;
      -p | --pid) [ $# -ge 2 ] || usage_error "$1 needs a PID"; scope+=(--pid "$2"); shift 2 ;;
      --pid=*) scope+=(--pid "${1#*=}"); shift ;;
      -d | --duration) [ $# -ge 2 ] || usage_error "$1 needs a duration (5s, 2m)"; duration=(--duration "$2"); shift 2 ;;
      --duration=*) duration=(--duration "${1#*=}"); shift ;;
      --) shift; args+=("$@"); break ;;
      -?*) usage_error "unknown option $1" ;;
      *) args+=("$1"); shift ;;
    esac
  done
}

