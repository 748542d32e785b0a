#!/bin/sh
# Pack your work into handin.tar: every .py file under mytorch/, and your homework's files under hw/
# (the handin line below). Nothing else (no caches, data, tests or autograder). Run it from anywhere:
# sh create_tarball.sh
# It refuses, and says why, if a required file is missing or your code does not import; an older
# handin.tar is then renamed handin.tar.old, so that a stale one is never handed in by mistake.
# It warns when functions are still the handout's stubs (they score 0).
# Exit status: 0 packed, 1 refused, 2 wrong usage.
set -eu

if [ $# -gt 0 ]; then
    case $1 in
        -h | --help) status=0 ;;
        *) status=2; echo "create_tarball.sh: unexpected argument '$1'" >&2 ;;
    esac
    echo "usage: sh create_tarball.sh   (no arguments: packs the folder this script is in into handin.tar)" >&2
    exit "$status"
fi

# The folder this script is in (dirname would take a folder name starting with '-' for an option).
case $0 in
    */*) here=${0%/*} ;;
    *) here=. ;;
esac
case $here in
    "") here=/ ;;
    -*) here=./$here ;;
esac
cd "$here"

refuse() {
    echo "create_tarball.sh: not packing: $1" >&2
    if [ -e handin.tar ] || [ -L handin.tar ]; then
        rm -f handin.tar.old 2> /dev/null || true
        if mv -f handin.tar handin.tar.old 2> /dev/null; then
            echo "create_tarball.sh: renamed the older handin.tar to handin.tar.old, so it is not handed in by mistake" >&2
        else
            echo "create_tarball.sh: an older handin.tar is still here and could not be renamed: do not hand it in" >&2
        fi
    fi
    exit 1
}

# The homework this folder is, what it hands in under hw/ and the files it requires
# (autograder/handout.py writes these three lines for each homework).
pack=mlp
handin="hw/mlp.py"
required="mytorch/__init__.py mytorch/_tape_rules.py mytorch/autograd_engine.py mytorch/gradcheck.py
mytorch/utils.py mytorch/nn/__init__.py mytorch/nn/functional.py mytorch/nn/modules/__init__.py
mytorch/nn/modules/activation.py mytorch/nn/modules/linear.py mytorch/nn/modules/loss.py
mytorch/tape_picture.py hw/mlp.py"

missing=""
for f in $required; do
    [ -f "$f" ] || missing="$missing $f"
done
[ -z "$missing" ] || refuse "required file(s) missing:$missing"

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" > /dev/null 2>&1 || PYTHON=python
command -v "$PYTHON" > /dev/null 2>&1 || refuse "no python3 or python found to check that your code imports (set PYTHON=/path/to/python)"

# Import this folder's mytorch and hand-in files under hw/ (never an installed copy) without writing
# caches, as the grader does.
if ! "$PYTHON" -B - $handin << 'PY'
import importlib.util, os, sys
here = os.getcwd()
sys.path.insert(0, here)
try:
    import mytorch, mytorch.nn, mytorch.nn.functional, mytorch.autograd_engine
    where = os.path.realpath(mytorch.__file__)
    if not where.startswith(os.path.realpath(here) + os.sep):
        sys.exit(f"mytorch was imported from {where}, not from this folder")
    for path in sys.argv[1:]:  # hw/mlp.py -> the module hw.mlp
        name = path[:-len(".py")].replace("/", ".")
        spec = importlib.util.spec_from_file_location(name, os.path.join(here, path))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
except SystemExit:
    raise
except BaseException as error:
    import traceback
    traceback.print_exc()
    sys.exit(f"your code does not import: {type(error).__name__}: {error}")
PY
then
    refuse "fix the import error above first"
fi

list=$(mktemp)
partial=handin.tar.partial
trap 'rm -f "$list" "$partial"' EXIT
find mytorch -type f -name '*.py' ! -path '*/.*' ! -path '*/__pycache__/*' | LC_ALL=C sort > "$list"
for f in $handin; do
    echo "$f" >> "$list"
done
tar -cf "$partial" -T "$list" || refuse "tar could not write the archive (see above)"
mv -f "$partial" handin.tar
echo "created handin.tar with $(wc -l < "$list" | tr -d ' ') files:"
sed 's/^/  /' "$list"

# The handout's stubs raise NotImplementedError("NAME in FILE is not implemented yet").
count=0
stubs=""
while IFS= read -r f; do
    names=$(sed -n 's/^[[:space:]]*raise NotImplementedError("\([^" ]*\) in [^"]* is not implemented yet").*/\1/p' "$f")
    if [ -n "$names" ]; then
        count=$((count + $(printf '%s\n' "$names" | wc -l)))
        stubs="$stubs  $f: $(printf '%s\n' "$names" | awk 'NR > 1 { printf ", " } { printf "%s", $0 }')
"
    fi
done < "$list"
if [ "$count" -gt 0 ]; then
    echo "create_tarball.sh: warning: $count function(s) are still the handout's stubs (they raise NotImplementedError and score 0):" >&2
    printf '%s' "$stubs" >&2
fi
echo "Hand in handin.tar (a TA grades it with: python autograder/runner.py --pack $pack --submission handin.tar --hidden)."
