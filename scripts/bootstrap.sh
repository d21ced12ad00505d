#!/usr/bin/env bash
# Sets up everything `make demo` and `make test` need, from a bare machine: .venv/ (Python 3.11,
# pinned by requirements/constraints.txt) and a colcon build of this package into build/ and install/.
# Idempotent: each step is skipped while the inputs it was made from are unchanged (a stamp file
# holds their hash), so a re-run takes seconds. Where a ROS 2 distribution is already sourced
# (ROS_DISTRO set and rclpy importable), that ROS and its Python are used instead of the PyPI wheels;
# when that Python is not 3.11 (Humble: 3.10, Jazzy: 3.12) the requirement files are installed
# without the pins of requirements/constraints.txt (and with numpy<2 where ROS's numpy is 1.x).
set -euo pipefail

ROOT=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)  # CDPATH= : else cd prints the path too
cd "$ROOT"
VENV="$ROOT/.venv"
REQ="$ROOT/requirements"

say() { printf '[bootstrap] %s\n' "$*"; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }
# Anything that fails without its own message still says where, never a silent half-done setup.
trap 'die "unexpected failure at line $LINENO: $BASH_COMMAND"' ERR
# Hash of the files a step was made from (missing ones count as empty: the hash still changes).
hash_of() { { cat "$@" 2>/dev/null || true; } | sha256sum | cut -c1-16; }

# ---- which ROS and which Python -------------------------------------------------------------
# requirements/constraints.txt was resolved for this Python (some pins have no wheels for others).
CONSTRAINTS_PYTHON=3.11
SYSTEM_ROS=""
if [[ -n "${ROS_DISTRO:-}" ]] && command -v ros2 >/dev/null 2>&1 && python3 -c "import rclpy" 2>/dev/null; then
  SYSTEM_ROS="$ROS_DISTRO"
  PYTHON=${PYTHON:-$(command -v python3)}
  say "using the sourced ROS 2 $SYSTEM_ROS and its $("$PYTHON" --version)"
else
  if [[ -n "${ROS_DISTRO:-}" ]]; then
    say "ROS_DISTRO=$ROS_DISTRO is set, but ros2 is not on the PATH or python3 cannot import rclpy: using the ROS 2 wheels instead"
  fi
  PYTHON=${PYTHON:-$(command -v python3.11 || true)}
  [[ -n "$PYTHON" ]] || die "Python 3.11 not found (set PYTHON=/path/to/python3.11); the ROS 2 wheels are built for 3.11"
fi
version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
  || die "cannot run $PYTHON (set PYTHON=/path/to/python3.11)"
[[ -n "$SYSTEM_ROS" || "$version" == "3.11" ]] || die "$PYTHON is Python $version; the ROS 2 wheels need 3.11 (set PYTHON=...)"
"$PYTHON" -c "import venv, ensurepip" 2>/dev/null || die "$PYTHON lacks venv/ensurepip (Debian: apt-get install python3-venv)"
for tool in gcc g++ cmake make; do
  command -v "$tool" >/dev/null || die "'$tool' not found: colcon needs a C/C++ toolchain and CMake to build the ROS messages (Debian: apt-get install build-essential cmake)"
done

# ---- the virtual environment ----------------------------------------------------------------
REQ_FILES=("$REQ/core.txt" "$REQ/dev.txt" "$REQ/constraints.txt" "$REQ/no-deps.txt")
[[ -z "$SYSTEM_ROS" ]] && REQ_FILES+=("$REQ/ros.txt")
venv_hash="$(hash_of "${REQ_FILES[@]}" setup.py)-${SYSTEM_ROS:-wheels}"
# A .venv of another Python or ROS setup (made before ROS was sourced, or with it) or one left
# incomplete (interrupted, or its Python removed) is made again: installing into it would mix
# interpreters. The colcon build under it goes too (its CMake cache and modules name that Python).
venv_fits() {
  [[ -x "$VENV/bin/python" ]] || return 1
  [[ "$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" == "$version" ]] || return 1
  local site=false line
  [[ -n "$SYSTEM_ROS" ]] && site=true
  while IFS= read -r line; do
    [[ "$line" =~ ^include-system-site-packages\ *=\ *(true|false) ]] && [[ "${BASH_REMATCH[1]}" == "$site" ]] && return 0
  done < "$VENV/pyvenv.cfg"
  return 1
}
if [[ -e "$VENV" ]] && ! venv_fits 2>/dev/null; then
  say "$VENV was made for another Python or ROS setup, or is incomplete: making it again (and the colcon build)"
  rm -rf "$VENV" build install log
fi
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.stamp" 2>/dev/null)" != "$venv_hash" ]]; then
  if [[ ! -d "$VENV" ]]; then
    free_gb=$(df -Pk "$ROOT" | awk 'NR==2 {print int($4/1048576)}')
    (( free_gb >= 12 )) || die "only ${free_gb} GB free under $ROOT; the environment needs about 12 GB (torch is large)"
    say "creating $VENV with $PYTHON"
    if [[ -n "$SYSTEM_ROS" ]]; then
      "$PYTHON" -m venv --system-site-packages "$VENV"
    else
      "$PYTHON" -m venv "$VENV"
    fi
  fi
  rm -f "$VENV/.stamp"
  PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
  "${PIP[@]}" install -q --upgrade "pip>=24"
  reqs=(-r "$REQ/core.txt" -r "$REQ/dev.txt")
  [[ -z "$SYSTEM_ROS" ]] && reqs+=(-r "$REQ/ros.txt")
  if [[ "$version" == "$CONSTRAINTS_PYTHON" ]]; then
    say "installing pinned packages (first run: several minutes)"
    reqs+=(-c "$REQ/constraints.txt")
  else
    # Only with a sourced ROS (Humble: 3.10, Jazzy: 3.12). ROS's compiled Python modules (messages,
    # cv_bridge) are built against the system's numpy: where that is 1.x, numpy 2 would break them.
    note=""
    if [[ "$("$PYTHON" -c 'import numpy; print(numpy.__version__.split(".")[0])' 2>/dev/null)" == "1" ]]; then
      echo "numpy<2" > "$VENV/ros-numpy.txt"
      reqs+=(-c "$VENV/ros-numpy.txt")
      note=", numpy<2 as ROS's numpy is 1.x"
    fi
    say "Python $version is not the $CONSTRAINTS_PYTHON requirements/constraints.txt was resolved for: installing requirements/*.txt without its pins$note (first run: several minutes)"
  fi
  "${PIP[@]}" install -q "${reqs[@]}" || die "pip install failed (see above)"
  # These declare loose or conflicting requirements of their own; what they need is in core.txt.
  "${PIP[@]}" install -q --no-deps -r "$REQ/no-deps.txt" || die "pip install of requirements/no-deps.txt failed"
  "${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT" || die "pip install -e . failed"
  echo "$venv_hash" > "$VENV/.stamp"
  say "environment ready"
fi

# ---- the ROS package (messages, ament index, launch files) ----------------------------------
CMAKE_ARGS=(-DBUILD_TESTING=OFF "-DPython3_EXECUTABLE=$VENV/bin/python")
if [[ -n "$SYSTEM_ROS" ]]; then
  COLCON=(colcon)
else
  COLCON=("$VENV/bin/colcon")
  export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PATH="$VENV/bin:$PATH"
  # The wheels' exported CMake targets name include directories of the machine they were built on.
  py_inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  for pair in "/opt/python/cp311-cp311/include/python3.11=$py_inc" \
              "/opt/python/cp311-cp311/lib/python3.11/site-packages=$site"; do
    link=${pair%%=*}; target=${pair#*=}
    if [[ "$(readlink "$link" 2>/dev/null)" != "$target" ]]; then
      if [[ -e "$link" && ! -L "$link" ]]; then
        : # a real directory there (a machine that has that Python): CMake finds what it needs
      else
        mkdir -p "$(dirname "$link")" 2>/dev/null && ln -sfn "$target" "$link" 2>/dev/null \
          || die "cannot create the symlink $link -> $target that the ROS wheels' CMake files need (run once as root, or create it by hand)"
      fi
    fi
  done
  # .venv lies inside the source tree, and CMake refuses exported include paths under the source
  # directory: name numpy's headers through the symlink above instead.
  CMAKE_ARGS+=("-DPython3_NumPy_INCLUDE_DIR=/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include")
fi

PKGS=(.)
if ! "$VENV/bin/python" -c "import tf2_msgs.msg" 2>/dev/null; then
  PKGS+=(third_party/tf2_msgs)
fi
ros_inputs=(package.xml CMakeLists.txt msg/* srv/* launch/* config/* scripts/ros/* third_party/tf2_msgs/*/*)
# The module names too: --symlink-install links each module file, so one added since the build is
# missing from install/ (what `ros2 run` imports) until colcon runs again.
modules="$(find locus_core locus_ros -name '*.py' | LC_ALL=C sort | sha256sum | cut -c1-8)"
ros_hash="$(hash_of "${ros_inputs[@]}")-$modules-${#PKGS[@]}-${SYSTEM_ROS:-wheels}"
if [[ ! -f install/setup.sh || "$(cat install/.stamp 2>/dev/null)" != "$ros_hash" ]]; then
  say "colcon build: ${PKGS[*]}"
  rm -f install/.stamp
  log=$(mktemp)
  if ! "${COLCON[@]}" --log-base log build --paths "${PKGS[@]}" --build-base build --install-base install \
      --symlink-install --merge-install --event-handlers console_direct- \
      --cmake-args "${CMAKE_ARGS[@]}" >"$log" 2>&1; then
    tail -40 "$log" >&2
    die "colcon build failed (full log: $log)"
  fi
  rm -f "$log"
  echo "$ros_hash" > install/.stamp
  say "ROS package built into install/"
fi
