#!/bin/sh
# Pack your work into handin.tar: every .py file under mytorch/, and hw/mlp.py. Nothing else
# (no caches, data, tests or autograder). Refuses, and says why, if a required file is missing or
# your code does not import. Run it from anywhere: sh create_tarball.sh
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python

required="mytorch/__init__.py mytorch/autograd_engine.py mytorch/utils.py mytorch/nn/__init__.py
mytorch/nn/functional.py mytorch/nn/modules/__init__.py mytorch/nn/modules/activation.py
mytorch/nn/modules/linear.py mytorch/nn/modules/loss.py hw/mlp.py"
missing=""
for f in $required; do
    [ -f "$f" ] || missing="$missing $f"
done
if [ -n "$missing" ]; then
    echo "create_tarball.sh: not packing: required file(s) missing:$missing" >&2
    exit 1
fi

# Import this folder's mytorch and hw/mlp.py (never an installed copy) without writing caches.
if ! "$PYTHON" -B - <<'PY'
import importlib.util, os, sys
here = os.getcwd()
sys.path.insert(0, here)
try:
    import mytorch, mytorch.nn, mytorch.nn.functional, mytorch.autograd_engine
    where = os.path.realpath(mytorch.__file__)
    if not where.startswith(os.path.realpath(here) + os.sep):
        sys.exit(f"mytorch was imported from {where}, not from this folder")
    spec = importlib.util.spec_from_file_location("hw.mlp", os.path.join(here, "hw", "mlp.py"))
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
except SystemExit:
    raise
except BaseException as error:
    import traceback
    traceback.print_exc()
    sys.exit(f"your code does not import: {type(error).__name__}: {error}")
PY
then
    echo "create_tarball.sh: not packing: fix the import error above first" >&2
    exit 1
fi

list=$(mktemp)
trap 'rm -f "$list"' EXIT
find mytorch -type f -name '*.py' ! -path '*/__pycache__/*' ! -name '.*' | LC_ALL=C sort > "$list"
echo hw/mlp.py >> "$list"
rm -f handin.tar
tar -cf handin.tar -T "$list"
echo "created handin.tar with $(wc -l < "$list" | tr -d ' ') files:"
sed 's/^/  /' "$list"
echo "Hand in handin.tar (a TA grades it with: python autograder/runner.py --submission handin.tar --hidden)."
