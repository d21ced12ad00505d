# Source this from bash or zsh (not sh/dash: they cannot tell a sourced file its path) to use the
# project's environment: the venv, the colcon-built ROS package (locus.msg, ament index) and this
# checkout first on the Python path, so that edits to locus_core/locus_ros take effect without a
# rebuild.
# CDPATH= : with CDPATH set, cd prints the directory it found, and the path would be two lines.
_locus_root=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]:-$0}")/.." && pwd)
if [ ! -f "$_locus_root/.venv/bin/activate" ]; then
  echo "scripts/env.sh: no environment in $_locus_root/.venv: run 'make setup' (scripts/bootstrap.sh) there first" >&2
  unset _locus_root
  return 1
fi
. "$_locus_root/.venv/bin/activate"
if [ -f "$_locus_root/install/setup.sh" ]; then
  COLCON_CURRENT_PREFIX="$_locus_root/install" . "$_locus_root/install/setup.sh"
fi
# Passive OpenMP waiting: see locus_core/__init__.py (here too, for processes that import torch first).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export PYTHONPATH="$_locus_root${PYTHONPATH:+:$PYTHONPATH}"
unset _locus_root
