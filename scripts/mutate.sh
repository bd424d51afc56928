#!/usr/bin/env bash
# Mutation testing of the per-frame core with mutmut (`make mutate`; not part of CI: it takes
# long). One run per module, each in its own copy of the tree under out/mutate/MODULE (mutmut
# writes a mutants/ folder beside the sources and must not race with a working tree in use),
# limited to the fast unit tests of that module. Prints killed/total per module and writes
# out/mutate/report.md with the surviving mutants.
#   scripts/mutate.sh [module ...]     modules: track events counting align attributes
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
MUTMUT=${MUTMUT:-$ROOT/.venv/bin/mutmut}
[ -x "$MUTMUT" ] || { echo "mutate: mutmut not installed: .venv/bin/pip install -r requirements-dev.txt" >&2; exit 1; }
export STREAMER_DATA=${STREAMER_DATA:-$(cd .. && pwd)/shared/data}

tests_for() {
  case "$1" in
    track) echo "tests/test_track.py" ;;
    events) echo "tests/test_events.py" ;;
    counting) echo "tests/test_counting.py" ;;
    # align: the alignment tests of test_attributes.py (chips, transforms, view quality)
    align) echo "tests/test_align.py tests/test_attributes.py -k template_or_similarity_or_warp_or_pyramid_or_frontal_or_sharp_or_chip_or_align_or_bilinear_or_box_transform_or_zoom_or_quality_or_dlib_exact_or_face_chips" ;;
    attributes) echo "tests/test_attributes.py tests/test_attributes_exact.py" ;;
    *) echo "mutate: unknown module $1 (track events counting align attributes)" >&2; exit 2 ;;
  esac
}

modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(track events counting align attributes)
mkdir -p out/mutate
for m in "${modules[@]}"; do
  work=out/mutate/$m
  rm -rf "$work" && mkdir -p "$work"
  rm -f out/mutate/summary.txt.$m
  cp -r streamer tests schema config pytest.ini "$work"/
  ln -s "$ROOT/models" "$work/models"
  sel=""
  for t in $(tests_for "$m"); do
    case "$t" in *.py) [ -f "$t" ] || continue ;; esac
    sel+="    ${t//_or_/ or }"$'\n'
  done
  cat > "$work/setup.cfg" <<CFG
[mutmut]
source_paths = streamer
only_mutate = streamer/core/$m.py
pytest_add_cli_args =
    -p
    no:cacheprovider
    -p
    no:timeout
pytest_add_cli_args_test_selection =
$sel
also_copy =
    schema
    config
    models
    pytest.ini
CFG
  echo "== mutate $m ($(tests_for "$m"))"
  (cd "$work" && nice -n 19 "$MUTMUT" run --max-children "${MUTATE_JOBS:-1}" >mutmut-run.log 2>&1) \
    || { echo "mutate: mutmut failed for $m: see $work/mutmut-run.log" >&2; tail -5 "$work/mutmut-run.log" >&2; exit 1; }
  (cd "$work" && "$MUTMUT" results --all true >results.txt 2>&1)
  "$PY" scripts/mutate_report.py "$m" "$work/results.txt" | tee -a out/mutate/summary.txt
done
"$PY" scripts/mutate_report.py --md out/mutate/*/results.txt > out/mutate/report.md
echo "mutate: report in out/mutate/report.md"
