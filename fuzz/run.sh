#!/usr/bin/env bash
# Run one atheris fuzz target for a set time:  fuzz/run.sh codec|tiff|t38 SECONDS [libFuzzer flags...]
#
# The target's native extensions are rebuilt into $FASTFAX_FUZZ_BUILD (default /tmp/fastfax-fuzz-build)
# with gcc's -fsanitize-coverage=trace-pc (and ASan + UBSan for the codec target); a
# small shim turns the PC callbacks into an 8-bit edge-counter array that the target
# registers with atheris's libFuzzer, so the fuzzer is guided by coverage inside the
# Cython code. Set FASTFAX_FUZZ_PLAIN=1 to fuzz the installed build instead. See
# fuzz/README.md. Not run in CI.
set -euo pipefail

target=${1:?usage: fuzz/run.sh codec|tiff|t38 SECONDS [libFuzzer flags...]}
seconds=${2:?usage: fuzz/run.sh codec|tiff|t38 SECONDS [libFuzzer flags...]}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FASTFAX_FUZZ_BUILD:-/tmp/fastfax-fuzz-build}
corpus="$root/fuzz-corpus/$target"
artifacts="$root/fuzz-corpus/$target-crashes/"
mkdir -p "$build" "$corpus" "$artifacts"

# ASan hides libFuzzer's coverage hooks from atheris (its Python coverage is lost), so it
# is on by default only for the codec and t38 targets, whose logic is native.
asan=${FASTFAX_FUZZ_ASAN:-$([[ $target == codec || $target == t38 ]] && echo 1 || echo 0)}
# With ASan comes UBSan (shifts past 63 bits, signed overflow), stopping at the first report.
sanitizers="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
# The native extensions each target exercises: module=source (a .pyx; the .pxi files beside
# it are its includes).
case $target in
    codec | tiff) extensions="fastfax._codec=src/fastfax/_codec.pyx" ;;
    t38) extensions="fastfax.t38._ifp=src/fastfax/t38/_ifp.pyx fastfax.t38._udptl=src/fastfax/t38/_udptl.pyx" ;;
    *) echo "fuzz/run.sh: unknown target $target" >&2; exit 2 ;;
esac
if [[ -z "${FASTFAX_FUZZ_PLAIN:-}" ]]; then
    # The extension source: the committed one (FASTFAX_FUZZ_REV, default HEAD), so a run
    # is reproducible while others edit the working tree; FASTFAX_FUZZ_REV=worktree uses
    # the files as they are.
    rev=${FASTFAX_FUZZ_REV:-HEAD}
    suffix=$(python -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
    inc=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
    sanitize=$([[ $asan == 1 ]] && echo "$sanitizers" || true)
    built=""
    for ext in $extensions; do
        module=${ext%%=*}
        pyx=${ext#*=}
        dir=$(dirname "$pyx")
        name=$(basename "$pyx" .pyx)
        stage=$(mktemp -d "$build/stage.XXXXXX")
        for file in "$pyx" $(cd "$root" && ls "$dir"/*.pxi 2>/dev/null); do
            if [[ $rev == worktree ]]; then
                cp "$root/$file" "$stage/"
            else
                git -C "$root" show "$rev:$file" > "$stage/$(basename "$file")"
            fi
        done
        tag=$( (cat "$stage"/*; cat "$0"; echo "asan=$asan $sanitizers") | sha1sum | cut -c1-12)
        so="$build/$tag/$name$suffix"
        if [[ ! -f "$so" ]]; then
            rm -rf "$build/$tag"
            mv "$stage" "$build/$tag"
            stage=""
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
            cython -3 --module-name "$module" "$build/$tag/$name.pyx" -o "$build/$tag/$name.c"
            gcc -O1 -g -fPIC $sanitize -fsanitize-coverage=trace-pc -I"$inc" \
                -c "$build/$tag/$name.c" -o "$build/$tag/$name.o"
            gcc -O1 -fPIC -c "$build/$tag/covshim.c" -o "$build/$tag/covshim.o"
            gcc -shared $sanitize "$build/$tag/$name.o" "$build/$tag/covshim.o" -o "$so"
        fi
        [[ -n "$stage" ]] && rm -rf "$stage"
        echo "fuzz: extension $module: $so (source $rev, asan=$asan)" >&2
        built="$built $module=$so"
    done
    # What the target loads instead of the installed extensions: module=path, space separated.
    export FASTFAX_FUZZ_EXT="${built# }"
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
