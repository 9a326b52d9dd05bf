#!/usr/bin/env bash
# Run one atheris fuzz target for a set time:  fuzz/run.sh codec|tiff SECONDS [libFuzzer flags...]
#
# The codec extension is rebuilt into $FASTFAX_FUZZ_BUILD (default /tmp/fastfax-fuzz-build)
# with gcc's -fsanitize-coverage=trace-pc (and ASan + UBSan for the codec target); a
# small shim turns the PC callbacks into an 8-bit edge-counter array that the target
# registers with atheris's libFuzzer, so the fuzzer is guided by coverage inside the
# Cython code. Set FASTFAX_FUZZ_PLAIN=1 to fuzz the installed build instead. See
# fuzz/README.md. Not run in CI.
set -euo pipefail

target=${1:?usage: fuzz/run.sh codec|tiff SECONDS [libFuzzer flags...]}
seconds=${2:?usage: fuzz/run.sh codec|tiff SECONDS [libFuzzer flags...]}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FASTFAX_FUZZ_BUILD:-/tmp/fastfax-fuzz-build}
corpus="$root/fuzz-corpus/$target"
artifacts="$root/fuzz-corpus/$target-crashes/"
mkdir -p "$build" "$corpus" "$artifacts"

# ASan hides libFuzzer's coverage hooks from atheris (its Python coverage is lost), so it
# is on by default only for the codec target, whose logic is native.
asan=${FASTFAX_FUZZ_ASAN:-$([[ $target == codec ]] && echo 1 || echo 0)}
# With ASan comes UBSan (shifts past 63 bits, signed overflow), stopping at the first report.
sanitizers="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
if [[ -z "${FASTFAX_FUZZ_PLAIN:-}" ]]; then
    # The extension source: the committed one (FASTFAX_FUZZ_REV, default HEAD), so a run
    # is reproducible while others edit the working tree; FASTFAX_FUZZ_REV=worktree uses
    # the file as it is.
    # FASTFAX_FUZZ_PYX=FILE fuzzes that file instead (e.g. a copy with a known bug fixed).
    rev=${FASTFAX_FUZZ_PYX:-${FASTFAX_FUZZ_REV:-HEAD}}
    src="$build/_codec.pyx"
    if [[ -n "${FASTFAX_FUZZ_PYX:-}" ]]; then
        cp "$FASTFAX_FUZZ_PYX" "$src.new"
    elif [[ $rev == worktree ]]; then
        cp "$root/src/fastfax/_codec.pyx" "$src.new"
    else
        git -C "$root" show "$rev:src/fastfax/_codec.pyx" > "$src.new"
    fi
    suffix=$(python -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
    tag=$( (cat "$src.new" "$0"; echo "asan=$asan $sanitizers") | sha1sum | cut -c1-12)
    so="$build/$tag/_codec$suffix"
    if [[ ! -f "$so" ]]; then
        mkdir -p "$build/$tag"
        mv "$src.new" "$build/$tag/_codec.pyx"
        cat > "$build/$tag/covshim.c" <<'SHIM'
/* Edge counters fed by gcc's -fsanitize-coverage=trace-pc (registered from Python). */
#include <stdint.h>
#define FF_COUNTERS (1 << 16)
uint8_t ff_cov_counters[FF_COUNTERS];
const unsigned long ff_cov_size = FF_COUNTERS;
static __thread uintptr_t ff_prev;
__attribute__((visibility("hidden"))) void __sanitizer_cov_trace_pc(void) {
    uintptr_t pc = (uintptr_t)__builtin_return_address(0);
    uintptr_t h = (pc ^ (pc >> 12)) * 0x9E3779B1u;
    ff_cov_counters[(h ^ ff_prev) & (FF_COUNTERS - 1)]++;
    ff_prev = h >> 1;
}
SHIM
        sanitize=$([[ $asan == 1 ]] && echo "$sanitizers" || true)
        inc=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
        cython -3 --module-name fastfax._codec "$build/$tag/_codec.pyx" -o "$build/$tag/_codec.c"
        gcc -O1 -g -fPIC $sanitize -fsanitize-coverage=trace-pc -I"$inc" \
            -c "$build/$tag/_codec.c" -o "$build/$tag/_codec.o"
        gcc -O1 -fPIC -c "$build/$tag/covshim.c" -o "$build/$tag/covshim.o"
        gcc -shared $sanitize "$build/$tag/_codec.o" "$build/$tag/covshim.o" -o "$so"
    fi
    rm -f "$src.new"
    echo "fuzz: extension $so (source $rev, asan=$asan)" >&2
    export FASTFAX_FUZZ_EXT="$so"
    if [[ $asan == 1 ]]; then
        # libstdc++ too: ASan must see __cxa_throw, which atheris uses to report an exception.
        preload=""
        for lib in libasan.so libubsan.so libstdc++.so.6; do
            preload="$preload $(gcc -print-file-name=$lib)"
        done
        export LD_PRELOAD="${preload# }"
        export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
        export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
    fi
fi

cd "$root"
exec python "fuzz/fuzz_$target.py" "$corpus" -max_total_time="$seconds" \
    -artifact_prefix="$artifacts" -rss_limit_mb=2048 -timeout=20 "$@"
