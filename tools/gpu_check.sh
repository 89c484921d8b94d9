#!/usr/bin/env bash
# GPU check: mmkd's stack installed, built and run on one NVIDIA GPU, offline (README.md, "GPU check").
#
# 1. On a machine with a package index, fill a wheel folder once:
#      tools/gpu_check.sh --download DIR [--python PY] [--python-version X.Y] [--have FILE]
#    --python-version: the GPU machine's Python when it differs (binary wheels for manylinux x86-64)
#    --have FILE: packages the GPU machine already has (its `pip list --format=freeze`, or names
#                 separated by newlines or commas); their wheels are left out unless pinned here
# 2. On the GPU machine (PyTorch with CUDA, a C++ compiler and nvcc; no internet needed):
#      tools/gpu_check.sh --wheels DIR [--python PY] [--work-dir DIR] [--iters N] [--budget S]
#                         [--install-only]
#    (a) a virtual environment in WORK_DIR/venv that sees PY's packages (its torch) and gets
#        mmengine, mmdet, mmrazor and what they need and PY lacks, from DIR only;
#    (b) mmcv's ops built from DIR/mmcv-<version>.tar.gz for this GPU's architecture only
#        (TORCH_CUDA_ARCH_LIST from torch.cuda.get_device_capability()), MAX_JOBS=$(nproc) unless
#        set; the wheel is kept in WORK_DIR/mmcv-wheels for the next run; then nms / roi_align on
#        the GPU against the CPU;
#    (c) within --budget seconds (default 600): --iters iterations (default 300) of the PKD and
#        LD toy configs with --amp in float16 and in bfloat16 (finite losses, float32
#        distillation losses, models in the reduced precision), the PKD config through mmrazor's
#        own SingleTeacherDistill (it/s compared), and tools/analysis_tools/benchmark_distill.py
#        on the GPU (cost ratio per method).
#    One summary table at the end (also in WORK_DIR/summary.md); exit status 1 when a check
#    failed. Without a GPU, (b) and (c) are skipped, each with a line saying so.
#
#   --python PY     the interpreter that has PyTorch (default: $PYTHON, else python3)
#   --work-dir DIR  default: work_dirs/gpu_check
#   --stack FILE / --deps FILE  install these requirements instead of mmkd's (without / with their
#                   dependencies); for testing the install path with small packages
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
helpers=$repo/tools/gpu_check

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() {
  printf 'gpu_check.sh: error: %s\n' "$*" >&2
  printf 'Run tools/gpu_check.sh --help for the options.\n' >&2
  exit 2
}
log() { printf '[gpu_check] %s\n' "$*"; }
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

download=''; wheels=''; py=${PYTHON:-python3}; work=$repo/work_dirs/gpu_check
iters=300; budget=600; pyver=''; have=''; install_only=0; stack_file=''; deps_file=''
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --install-only) install_only=1; shift; continue ;;
    --download|--wheels|--python|--python-version|--have|--work-dir|--iters|--budget|--stack|--deps)
      [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"
      case $1 in
        --download) download=$2 ;;
        --wheels) wheels=$2 ;;
        --python) py=$2 ;;
        --python-version) pyver=$2 ;;
        --have) have=$2 ;;
        --work-dir) work=$2 ;;
        --iters) iters=$2 ;;
        --budget) budget=$2 ;;
        --stack) stack_file=$2 ;;
        --deps) deps_file=$2 ;;
      esac
      shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done

[ -n "$download" ] && [ -n "$wheels" ] && die '--download and --wheels exclude each other: fill the folder on a machine with a package index, run the check on the GPU machine'
[ -z "$download" ] && [ -z "$wheels" ] && die 'give --download DIR (fill a wheel folder) or --wheels DIR (run the check)'
is_count "$iters" || die "--iters must be a positive whole number, got '$iters'"
is_count "$budget" || die "--budget must be a positive whole number of seconds, got '$budget'"
if [ -n "$wheels" ]; then
  [ -z "$pyver" ] || die '--python-version only goes with --download'
  [ -z "$have" ] || die '--have only goes with --download'
  [ -d "$wheels" ] || die "--wheels: no folder '$wheels' (fill one with --download DIR on a machine with a package index)"
  wheels=$(cd "$wheels" && pwd)
fi
[ -z "$have" ] || [ -f "$have" ] || die "--have: no file '$have'"
for f in "$stack_file" "$deps_file"; do
  [ -z "$f" ] || [ -f "$f" ] || die "no requirement file '$f'"
done
command -v "$py" >/dev/null 2>&1 || die "--python: '$py' is not a program here"

# ------------------------------------------------------------------ the requirement lists
# From the repository's own pins (requirements/runtime.txt, build.txt) and tools/gpu_check/deps.txt
mkdir -p "$work" || die "cannot create the work directory '$work'"
work=$(cd "$work" && pwd)
reqs=$work/requirements
mkdir -p "$reqs"
mmcv_version=$(sed -n 's/^mmcv==\([0-9.]*\).*/\1/p' "$repo/requirements/runtime.txt")
if [ -n "$stack_file" ]; then
  cp "$stack_file" "$reqs/stack.txt"
else
  grep -E '^(mmengine|mmdet|mmrazor)==' "$repo/requirements/runtime.txt" > "$reqs/stack.txt"
fi
if [ -n "$deps_file" ]; then
  cp "$deps_file" "$reqs/deps.txt"
else
  { grep -vE '^(#|mm|numpy|$)' "$repo/requirements/runtime.txt"
    grep -vE '^(#|$)' "$repo/requirements/build.txt"
    grep -vE '^(#|$)' "$helpers/deps.txt"; } > "$reqs/deps.txt"
fi

# ------------------------------------------------------------------ --download
if [ -n "$download" ]; then
  mkdir -p "$download" || die "cannot create '$download'"
  target=()
  if [ -n "$pyver" ]; then
    [[ $pyver =~ ^3\.[0-9]+$ ]] || die "--python-version must look like 3.12, got '$pyver'"
    target=(--only-binary=:all: --python-version "$pyver" --implementation cp
            --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64)
    for n in 24 27 28 31 34 35 39; do target+=(--platform "manylinux_2_${n}_x86_64"); done
  fi
  pipd() { "$py" -m pip --disable-pip-version-check download -d "$download" "$@"; }
  log "downloading into $download"
  pipd --no-deps "${target[@]}" -r "$reqs/stack.txt" || die 'pip download of the OpenMMLab packages failed (see above)'
  if [ -z "$stack_file" ]; then
    pipd --no-deps --no-binary :all: "mmcv==$mmcv_version" || die "pip download of mmcv $mmcv_version's source archive failed"
  fi
  extra=()
  [ -n "$deps_file" ] || extra=('numpy<2' opencv-python-headless)
  pipd "${target[@]}" -r "$reqs/deps.txt" "${extra[@]}" || die 'pip download of the dependencies failed (see above)'
  # a dependency that came as a source archive is built into a wheel here (mmcv is built there)
  for sdist in "$download"/*.tar.gz "$download"/*.zip; do
    [ -e "$sdist" ] || continue
    case $(basename "$sdist") in mmcv-*) continue ;; esac
    "$py" -m pip --disable-pip-version-check wheel --no-deps -w "$download" "$sdist" \
      && rm -f "$sdist" || die "could not build a wheel of $sdist"
  done
  if [ -n "$have" ]; then
    "$py" "$helpers/wheels.py" prune "$download" --have "$have" --keep "$reqs/stack.txt" "$reqs/deps.txt" || exit 1
  fi
  log "done: $(ls "$download" | wc -l) files, $(du -sh "$download" | cut -f1) in $download"
  log "next, on the GPU machine: tools/gpu_check.sh --wheels $download"
  exit 0
fi

# ------------------------------------------------------------------ the check
results=$work/results
logs=$work/logs
rm -rf "$results"
mkdir -p "$results" "$logs"
order=0
record() { # CHECK STATUS RESULT: the record of a check this script judges
  order=$((order + 1))
  "$py" "$helpers/summary.py" record "$results" "$1" "$2" "${3:-}" --order "$order"
  printf '[gpu_check] %-42s %-8s %s\n' "$1" "$2" "${3:-}"
}
next_record() { # SLUG: sets $out, where a helper writes its own record
  order=$((order + 1)); out=$(printf '%s/%03d_%s.json' "$results" "$order" "$1")
}
tail_of() { tail -n "${2:-25}" "$1" | sed 's/^/    /' >&2; }
finish() {
  echo
  "$py" "$helpers/summary.py" table "$results" | tee "$work/summary.md"
  exit "${PIPESTATUS[0]}"
}

# (a) ---------------------------------------------------------------- install
venv=$work/venv
vpy=$venv/bin/python
if [ ! -x "$vpy" ]; then
  log "creating $venv (it sees $py's packages, after its own)"
  "$py" -m venv --without-pip "$venv" || die "$py -m venv failed"
  site=$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # a .pth line that starts with `import` runs: PY's site folders, with their own .pth files
  "$py" -c 'import sys
dirs = [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))]
print("import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs))' > "$site/gpu_check_base.pth"
fi
"$vpy" -m pip --version >/dev/null 2>&1 || die "no pip importable for $py: install pip there first"
facts=$("$vpy" "$helpers/machine.py") \
  || die "--python: '$py' cannot import torch; give the interpreter that has PyTorch with CUDA"
eval "$facts"  # gpu, bf16, arch, has_numpy, has_cv2, build_key, machine
record machine info "$machine"

pipi() { "$vpy" -m pip --disable-pip-version-check install --no-index --find-links "$wheels" "$@"; }
extra=()
if [ -z "$deps_file" ]; then
  [ "$has_numpy" = 1 ] || extra+=('numpy<2')
  [ "$has_cv2" = 1 ] || extra+=(opencv-python-headless)
fi
log "installing from $wheels (log: $logs/install.log)"
if ! { pipi -r "$reqs/deps.txt" "${extra[@]}" && pipi --no-deps -r "$reqs/stack.txt"; } > "$logs/install.log" 2>&1; then
  tail_of "$logs/install.log"
  missing=$(sed -n 's/.*No matching distribution found for \(.*\)/\1/p' "$logs/install.log" | head -n 1)
  record install FAIL "pip could not install from $wheels${missing:+ (no wheel for $missing)}; fill it with tools/gpu_check.sh --download DIR"
  finish
fi
record install ok "$(grep -vE '^(#|$)' "$reqs/stack.txt" | tr '\n' ' ')from $wheels"

# (b) ---------------------------------------------------------------- mmcv ops
sm=sm_${arch/./}
if [ -n "$stack_file" ]; then
  record 'mmcv ops build' skipped "not built: --stack replaced mmkd's requirements"
elif [ "$gpu" = 0 ]; then
  record 'mmcv ops build' skipped 'not built: torch sees no CUDA GPU (the ops are built for the GPU found)'
else
  cache=$work/mmcv-wheels/$build_key-$sm
  wheel=$(ls "$cache"/mmcv-"$mmcv_version"-*.whl 2>/dev/null | head -n 1)
  sdist=$wheels/mmcv-$mmcv_version.tar.gz
  if [ -n "$wheel" ]; then
    built="the wheel built for $sm by an earlier run ($cache)"
  elif [ ! -f "$sdist" ]; then
    record 'mmcv ops build' FAIL "no $sdist: fill the folder with tools/gpu_check.sh --download DIR"
  else
    jobs=${MAX_JOBS:-$(nproc)}
    include=$("$vpy" "$helpers/mmcv_build.py" include-path "$work/mmcv-compat")
    log "building mmcv $mmcv_version ops for $sm with $jobs jobs (log: $logs/mmcv-build.log)"
    [ -z "$include" ] || log "extra include folders: $include"
    start=$(date +%s)
    tmp=$(mktemp -d)
    if CPATH="$include${CPATH:+:$CPATH}" MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=$arch \
        MAX_JOBS=$jobs "$vpy" -m pip --disable-pip-version-check wheel --no-deps \
        --no-build-isolation --no-index -w "$tmp" "$sdist" > "$logs/mmcv-build.log" 2>&1; then
      mkdir -p "$cache" && mv "$tmp"/mmcv-*.whl "$cache"/
      wheel=$(ls "$cache"/mmcv-"$mmcv_version"-*.whl | head -n 1)
      built="built for $sm in $(( $(date +%s) - start )) s with $jobs jobs"
    else
      tail_of "$logs/mmcv-build.log" 40
      record 'mmcv ops build' FAIL "the build failed after $(( $(date +%s) - start )) s; see $logs/mmcv-build.log"
    fi
    rm -rf "$tmp"
  fi
  if [ -n "$wheel" ]; then
    if "$vpy" -m pip --disable-pip-version-check install --no-deps --force-reinstall "$wheel" \
        >> "$logs/mmcv-build.log" 2>&1; then
      record 'mmcv ops build' ok "$built"
    else
      record 'mmcv ops build' FAIL "could not install $wheel; see $logs/mmcv-build.log"
    fi
  fi
fi
if [ "$gpu" = 1 ] && [ -z "$stack_file" ]; then
  next_record mmcv-ops
  "$vpy" "$helpers/ops_check.py" --out "$out" > "$logs/ops-check.log" 2>&1 \
    || { [ -f "$out" ] || record 'mmcv ops on the GPU' FAIL "ops_check.py failed; see $logs/ops-check.log"; }
fi

if [ "$install_only" = 1 ]; then
  log 'installed (--install-only): the runs are skipped'
  finish
fi

# (c) ---------------------------------------------------------------- the runs
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
cd "$repo" || exit 1
pkd=configs/toy/pkd_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py
ld=configs/toy/ld_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py
t0=$(date +%s)
runs_possible=1
if [ "$gpu" = 0 ]; then
  runs_possible=0; why='not run: torch sees no CUDA GPU'
elif ! "$vpy" -c 'import mmcv.ops' 2>/dev/null; then
  runs_possible=0; why='not run: mmcv ops are not installed (see the build above)'
fi

# STEP NAME SLUG COMMAND...: run with the time left of the budget; the command writes its own
# record to $out (from next_record) or this writes a FAIL one
step() {
  local name=$1 slug=$2; shift 2
  if [ "$runs_possible" = 0 ]; then record "$name" skipped "$why"; return; fi
  local left=$(( budget - ($(date +%s) - t0) ))
  if [ "$left" -lt 30 ]; then
    record "$name" skipped "not run: the $budget s budget of the runs is spent"; return
  fi
  next_record "$slug"
  local cmd=("$@")
  cmd=("${cmd[@]//@OUT@/$out}")
  log "$name (at most $left s; log: $logs/$slug.log)"
  timeout --kill-after=10 "$left" "${cmd[@]}" > "$logs/$slug.log" 2>&1
  local rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    rm -f "$out"; order=$((order - 1))
    record "$name" timeout "stopped at the end of the $budget s budget; see $logs/$slug.log"
  elif [ ! -f "$out" ]; then
    order=$((order - 1)); tail_of "$logs/$slug.log"
    record "$name" FAIL "exit status $rc and no result; see $logs/$slug.log"
  else
    [ "$rc" = 0 ] || tail_of "$logs/$slug.log" 15
    "$py" -c 'import json, sys; r = json.load(open(sys.argv[1])); print("[gpu_check] %-42s %-8s %s" % (r["check"], r["status"], r["result"]))' "$out"
  fi
}

amp() { # NAME SLUG CONFIG DTYPE [EXTRA ARGS]
  local name=$1 slug=$2 config=$3 dtype=$4; shift 4
  step "$name" "$slug" "$vpy" "$helpers/amp_run.py" "$config" --dtype "$dtype" --iters "$iters" \
    --work-dir "$work/runs/$slug" --data-root "$work/toy_shapes" --check "$name" --out @OUT@ "$@"
}
amp 'pkd fp16' pkd-fp16 "$pkd" float16
if [ "$bf16" = 1 ] || [ "$gpu" = 0 ]; then amp 'pkd bf16' pkd-bf16 "$pkd" bfloat16
else record 'pkd bf16' skipped 'not run: this GPU has no bfloat16'; fi
amp 'ld fp16' ld-fp16 "$ld" float16
if [ "$bf16" = 1 ] || [ "$gpu" = 0 ]; then amp 'ld bf16' ld-bf16 "$ld" bfloat16
else record 'ld bf16' skipped 'not run: this GPU has no bfloat16'; fi
amp 'pkd fp16 via mmrazor SingleTeacherDistill' pkd-fp16-mmrazor "$pkd" float16 \
  --algorithm mmrazor --compare-to 'pkd fp16'

bench_json=$work/benchmark_distill.json
rm -f "$bench_json"
if [ "$runs_possible" = 0 ]; then
  record 'benchmark_distill' skipped "$why"
elif [ $(( budget - ($(date +%s) - t0) )) -lt 30 ]; then
  record 'benchmark_distill' skipped "not run: the $budget s budget of the runs is spent"
else
  left=$(( budget - ($(date +%s) - t0) ))
  log "benchmark_distill on the GPU (at most $left s; log: $logs/benchmark.log)"
  timeout --kill-after=10 "$left" "$vpy" tools/analysis_tools/benchmark_distill.py --device cuda \
    --no-sizes --json "$bench_json" > "$logs/benchmark.log" 2>&1
  rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    record 'benchmark_distill' timeout "stopped at the end of the $budget s budget; see $logs/benchmark.log"
  elif [ "$rc" != 0 ] || [ ! -f "$bench_json" ]; then
    tail_of "$logs/benchmark.log"
    record 'benchmark_distill' FAIL "exit status $rc; see $logs/benchmark.log"
  else
    "$py" "$helpers/summary.py" benchmark "$bench_json" "$results" --order $((order + 1))
  fi
fi
finish
