#!/usr/bin/env bash
# `make demo`: the main job on an embedded default, over real DDS.
#
# 1. Builds a landmark map with the shipped model from the 7-Scenes redkitchen train split (or, when
#    ../shared/data is absent, from the first half of a procedural synthetic scene).
# 2. Starts the localizer node in localization mode, a live monitor scoring it against ground truth,
#    and the player publishing the held-out frames as a camera driver would (rgb, depth, camera_info,
#    odometry TF, /clock), all as separate processes in a DDS domain of their own.
# 3. Prints a line per frame and a summary (localized rate, precision, median errors, latency), and
#    where the map, logs and summary are.
#
# Environment overrides: LOCUS_DEMO_OUT (default runs/demo), LOCUS_DEMO_DATA (a data set folder or
# bag), LOCUS_DEMO_MAP_FRAMES / LOCUS_DEMO_QUERY_FRAMES (START:STOP[:STEP]), LOCUS_DEMO_MODEL
# (default: the shipped checkpoint), LOCUS_DEMO_RATE (playback speed), ROS_DOMAIN_ID.
set -eo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh  # before `set -u`: ROS setup scripts read unset variables
set -u

out=${LOCUS_DEMO_OUT:-runs/demo}
model=${LOCUS_DEMO_MODEL:-default}
rate=${LOCUS_DEMO_RATE:-1.0}
mkdir -p "$out"
log() { printf '[demo] %s\n' "$*"; }

data=${LOCUS_DEMO_DATA:-../shared/data/7scenes-redkitchen}
if [[ -e "$data" ]]; then
    map_frames=${LOCUS_DEMO_MAP_FRAMES:-0:600:2}
    query_frames=${LOCUS_DEMO_QUERY_FRAMES:-600:1000:10}
else
    log "real data not found at $data: using a procedural synthetic scene instead"
    data=$out/synthetic-scene
    [[ -f "$data/scene.json" ]] || locus data synth --out "$data" --seed 7 --rooms 3 --frames 160
    map_frames=${LOCUS_DEMO_MAP_FRAMES:-0:80}
    query_frames=${LOCUS_DEMO_QUERY_FRAMES:-80:160:2}
fi

# The map is rebuilt only when its inputs change (data, frames, model file, the code that reads the data,
# maps and does geometry).
map=$out/map
model_file=$(python -c 'import sys; from locus_core.models import DEFAULT_CHECKPOINT as d
print(d if sys.argv[1] == "default" else sys.argv[1])' "$model")
code=$(find locus_core/mapping locus_core/data locus_core/geometry.py -name '*.py' | sort | xargs cat | sha256sum | cut -c1-12)
key="$(realpath "$data") $map_frames $model $(stat -c %Y "$model_file" 2>/dev/null || echo 0) $code"
if [[ ! -f "$out/map.key" || "$(cat "$out/map.key")" != "$key" ]]; then
    log "building the map: $data frames $map_frames, model $model"
    locus map build --model "$model" --data "$data" --frames "$map_frames" --out "$map"
    printf '%s' "$key" > "$out/map.key"
else
    log "reusing the map in $map"
fi

export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}
# Everything runs on this host: shared memory large enough for 640x480 frames (locus_ros/transport.py).
export FASTDDS_BUILTIN_TRANSPORTS=${FASTDDS_BUILTIN_TRANSPORTS:-$(python -m locus_ros.transport)}
log "ROS_DOMAIN_ID=$ROS_DOMAIN_ID; logs in $out/*.log"

pids=()
cleanup() {
    # TERM, not INT: a script's background jobs ignore SIGINT (the watchdog's sleep held the exit for
    # its 90 s; a node still importing never saw it). The nodes shut down on either.
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

python -m locus_ros.localizer_node --ros-args \
    --params-file config/localize.yaml \
    -p map_path:="$map" -p model:="$model" -p mode:=localization -p use_sim_time:=true \
    -r rgb/image:=/camera/color/image_raw \
    -r depth/image:=/camera/aligned_depth_to_color/image_raw \
    -r rgb/camera_info:=/camera/color/camera_info \
    > "$out/node.log" 2>&1 &
pids+=($!)

python -m locus_ros.monitor --out "$out/summary.json" --idle-timeout 20 --ros-args -p use_sim_time:=true \
    2> "$out/monitor.log" &
monitor=$!
pids+=($monitor)  # it stops by itself only once answers came: on a failure before that, cleanup stops it

# Play only once the node has its model and map: frames published before that would be dropped.
for _ in $(seq 300); do
    grep -q "keyframes, .* landmarks" "$out/node.log" && break
    kill -0 "${pids[0]}" 2>/dev/null || { log "the node exited: see $out/node.log"; tail -5 "$out/node.log"; exit 1; }
    sleep 1
done
log "playing $data frames $query_frames at ${rate}x (the node loads the model and map first)"
python -m locus_ros.player "$data" --frames "$query_frames" --tf odom --rate "$rate" --wait 120 \
    > "$out/player.log" 2>&1

# The monitor stops by itself once frames stop arriving; if the node never answered, stop it after a
# grace period so that the summary (with zero frames) and the logs still say what happened.
( sleep 90; kill -TERM "$monitor" 2>/dev/null ) > /dev/null 2>&1 &  # its sleep outlives cleanup: not on our stdout
pids+=($!)
wait "$monitor" || { log "the monitor failed: see $out/monitor.log and $out/node.log"; exit 1; }
log "summary: $out/summary.json; map: $map; node log: $out/node.log"
