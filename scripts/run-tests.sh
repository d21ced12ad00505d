#!/usr/bin/env bash
# The test suite, in the project's environment (`make test` runs this after the bootstrap).
set -euo pipefail
CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
set +u  # the colcon setup scripts read unset variables
. scripts/env.sh
set -u
exec python -m pytest test -q -p no:cacheprovider --timeout=600 "$@"
