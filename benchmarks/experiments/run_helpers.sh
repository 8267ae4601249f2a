# Shell functions the experiments' run.sh files source (run from the repository root).

has_row() {  # has_row <bench json> <row>: the file exists and holds that row's record
  [ -f "$1" ] && python -c "import json, sys
sys.exit(not any(r['model'] == sys.argv[2] for r in json.load(open(sys.argv[1]))['results']))" "$1" "$2"
}

checkpoint_of() {  # checkpoint_of <bench json> <row>: the checkpoint that row saved, on this machine
  python -c "import sys
from recbole_instructrec.bench.derived_rows import trained_checkpoint
try:
    print(trained_checkpoint(sys.argv[2], sys.argv[1]))
except ValueError as error:
    sys.exit(str(error))" "$1" "$2"
}
