#!/usr/bin/env bash
# The paper's 4.2 and 4.1 at full scale on one GPU, in one call (see README.md beside this file):
#
#   bash benchmarks/gpu/run.sh OUT_DIR           # on a machine with CUDA and a PyTorch
#   bash benchmarks/gpu/run.sh OUT_DIR --tiny    # the same script at a tiny scale on any CPU (CI)
#
# Installs nothing that is already importable. Otherwise the wheels carried in .whl/ (gymnasium,
# ale-py, pytest and their dependencies, for the machine's Python) go into a folder of their own
# (pip --target, no index, no dependencies resolved: the machine's torch, numpy and h5py stay as
# they are), and the project itself is used from this checkout through PYTHONPATH (no build step,
# so no build backend has to be downloaded). Other flags go to full_scale.py (--budget SECONDS, ...).
set -euo pipefail
export CSWM_GPU_T0=${CSWM_GPU_T0:-$(date +%s.%N)}
if [ $# -lt 1 ] || [[ $1 == -* ]]; then
    echo "usage: bash benchmarks/gpu/run.sh OUT_DIR [--tiny] [--budget SECONDS] ..." >&2
    exit 2
fi
OUT=$1
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=${PYTHON:-python3}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg

if "$PY" -c "import cswm_lib, gymnasium, ale_py, pytest" 2>/dev/null; then
    echo "install: skipped (cswm_lib, gymnasium, ale_py and pytest are importable)"
else
    SITE=${CSWM_GPU_SITE:-${TMPDIR:-/tmp}/cswm-gpu-site}
    if ! ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
        echo "install: no wheels in $ROOT/.whl (see benchmarks/gpu/README.md: prepare them where a" \
             "package registry is reachable)" >&2
        exit 3
    fi
    mkdir -p "$SITE"
    # only the wheels whose distribution is not installed (never shadow the machine's own packages)
    mapfile -t WHEELS < <("$PY" - "$ROOT/.whl" <<'EOF'
import importlib.metadata as m, pathlib, re, sys
for w in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name = re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower()
    try:
        m.version(name)
    except m.PackageNotFoundError:
        print(w)
EOF
)
    echo "install: ${#WHEELS[@]} wheel(s) into $SITE: ${WHEELS[*]##*/}"
    if [ ${#WHEELS[@]} -gt 0 ]; then
        # no pip, or pip refuses: a wheel is a zip laid out for site-packages
        if ! { "$PY" -m pip --version >/dev/null 2>&1 &&
               "$PY" -m pip install --quiet --no-deps --no-index --target "$SITE" "${WHEELS[@]}"; }; then
            echo "install: pip unavailable or failed; unzipping the wheels instead"
            for w in "${WHEELS[@]}"; do "$PY" -m zipfile -e "$w" "$SITE"; done
        fi
    fi
    export PYTHONPATH="$ROOT:$SITE${PYTHONPATH#"$ROOT"}"
    "$PY" -c "import cswm_lib, gymnasium, ale_py, pytest" || { echo "install: imports still fail" >&2; exit 3; }
fi
cd "$ROOT"
exec "$PY" benchmarks/gpu/full_scale.py --out "$OUT" "$@"
