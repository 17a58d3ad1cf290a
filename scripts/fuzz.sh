#!/usr/bin/env bash
# Fuzzes quantdb's readers of untrusted bytes with cargo-fuzz (libFuzzer, AddressSanitizer,
# debug assertions on), one target after another: the upstream answer parsers (sina, tencent,
# eastmoney, relay), Symbol::parse (symbol), the stored record decoders (stored), the file
# cache's log (file_log), the daily-history parsers of every upstream and what is derived from
# them (history) and the stored history records (history_record). The targets and the
# properties they check are in fuzz/.
#
#   scripts/fuzz.sh --short                 build, then every target for 12 s (about 2 min)
#   scripts/fuzz.sh [SECONDS] [TARGET...]   build, then a campaign of SECONDS per target
#                                           (default 600) on the named targets (default all)
#   ... -- -runs=10000000                   anything after `--` goes to libFuzzer
#
# Seeds are read from fuzz/seeds/<target>/ (the real upstream samples; never written), and
# the targets that read JSON get fuzz/dicts/json.dict (its tokens and edge numbers). A
# campaign grows fuzz/corpus/<target>/; a --short run reads that corpus too but writes what
# it finds to a scratch directory, so it changes nothing. A crash (panic, sanitizer error,
# timeout, allocation over the limit) is saved in fuzz/artifacts/<target>/ and makes the
# script exit non-zero after the remaining targets ran. Logs: fuzz/target/fuzz-logs/.
# Reproduce a crash: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a TARGET ARTIFACT`.
#
# Needs: rustup's stable toolchain (cargo-fuzz passes -Z flags: RUSTC_BOOTSTRAP=1 lets
# stable take them), a C++ compiler (libfuzzer-sys builds libFuzzer), and cargo-fuzz 0.13.2,
# which this script installs with `cargo install` when it is missing (about 1 min; that
# step belongs in scripts/install-toolchain.sh and can move there as is).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

CARGO_FUZZ_VERSION=0.13.2
TARGETS=(sina tencent eastmoney relay symbol stored file_log history history_record)

seconds=600
short=false
targets=()
libfuzzer_args=()
while (($#)); do
    case "$1" in
        --short) short=true seconds=12 ;;
        --) shift; libfuzzer_args=("$@"); break ;;
        [0-9]*) seconds=$1 ;;
        -*) echo "usage: $0 [--short | SECONDS] [TARGET...] [-- LIBFUZZER_FLAGS...]" >&2; exit 2 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
((${#targets[@]})) || targets=("${TARGETS[@]}")

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    echo "[fuzz] installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
command -v c++ >/dev/null || { echo "[fuzz] needs a C++ compiler (apt-get install g++)" >&2; exit 1; }

export RUSTC_BOOTSTRAP=1
flags=(-O -a) # release code with debug assertions and overflow checks

echo "[fuzz] building ${TARGETS[*]}"
start=$SECONDS
cargo fuzz build "${flags[@]}"
echo "[fuzz] built in $((SECONDS - start)) s"

# The file_log target writes its scratch cache directory under TMPDIR: memory when there is
# /dev/shm (ten times the executions of a disk), and removed when the script ends.
scratch=$(mktemp -d "$( [ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/quantdb-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p target/fuzz-logs

failed=()
for t in "${targets[@]}"; do
    [ -d "seeds/$t" ] || { echo "[fuzz] unknown target $t (have: ${TARGETS[*]})" >&2; exit 2; }
    mkdir -p "corpus/$t" "artifacts/$t"
    if $short; then
        mkdir -p "$scratch/corpus/$t"
        corpora=("$scratch/corpus/$t" "seeds/$t" "corpus/$t")
    else
        corpora=("corpus/$t" "seeds/$t")
    fi
    dict=() # JSON tokens and edge numbers for the targets that read JSON
    case $t in eastmoney | relay | stored | file_log | history | history_record) dict=(-dict="$PWD/dicts/json.dict") ;; esac
    log=target/fuzz-logs/$t.log
    echo "[fuzz] $t: ${seconds} s"
    start=$SECONDS
    if TMPDIR=$scratch cargo fuzz run "${flags[@]}" "$t" "${corpora[@]}" -- \
        -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -malloc_limit_mb=64 -use_value_profile=1 -print_final_stats=1 ${dict[@]+"${dict[@]}"} \
        ${libfuzzer_args[@]+"${libfuzzer_args[@]}"} >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        echo "[fuzz] $t: ok, $runs executions, $rate exec/s, $((SECONDS - start)) s wall"
    else
        tail -n 40 "$log"
        echo "[fuzz] $t: FAILED (log $PWD/$log, input in $PWD/artifacts/$t/)"
        failed+=("$t")
    fi
done

if ((${#failed[@]})); then
    echo "[fuzz] crashes in: ${failed[*]}"
    exit 1
fi
echo "[fuzz] no crash"
