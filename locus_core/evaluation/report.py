"""``report.md``: the resolved config, the model hash and one table per task, ours next to the baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from locus_core.config import config_to_dict


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "inf" if value == float("inf") else ("nan" if value != value else f"{value:.{digits}f}")
    return str(value)


def write_report(path: Path, metrics: dict[str, Any], config: Any, figures: list[Path]) -> Path:
    m = metrics
    ours = f"`{m['model']['spec']}`" if m["model"]["raw"] else "LoCUS"
    lines = [
        f"# LoCUS evaluation: {m['data']['name']}",
        "",
        f"- model: `{m['model']['spec']}` (hash `{m['model']['hash']}`, backbone `{m['model']['backbone']}`)",
        f"- baselines: `{m['model']['baseline']}` (raw features, every task); XFeat + LighterGlue (relative pose)",
        f"- data: `{m['data']['path']}` ({m['data']['format']}), {m['data']['frames']} frames, "
        f"selection `{m['data']['selection']}`, train selection `{m['data']['train_selection']}`",
        f"- wall time: {m['wall_time_s']} s ("
        + ", ".join(f"{k} {v} s" for k, v in m["timings_s"].items()) + ")",
        "",
    ]
    if m.get("skipped"):
        lines += ["Skipped tasks: " + "; ".join(f"{k} ({v})" for k, v in m["skipped"].items()), ""]
    if "retrieval" in m:
        r = m["retrieval"]
        lines += ["## Patch retrieval (exact AP)", "",
                  f"ρ = {r['rho_m']} m positives, κ = {r['kappa_m']} m candidates, {r['queries']} queries.", "",
                  f"| | {ours} | raw backbone | ratio |", "|---|---|---|---|",
                  f"| AP | {_f(r['ap'])} | {_f(r['ap_backbone'])} | {_f(r['ratio'], 2)} |", ""]
    if "place" in m:
        p = m["place"]
        lines += ["## Place recognition", "",
                  f"{p['queries']} queries with a possible hit (≥ {p['min_covisibility']:.0%} co-visibility), "
                  f"{p['database_frames']} database frames, {p['queries_without_hit']} queries without any hit "
                  "(not counted).", "",
                  f"| | {ours} | raw backbone |", "|---|---|---|",
                  f"| recall@1 | {_f(p['recall_at_1'])} | {_f(p['recall_at_1_backbone'])} |",
                  f"| recall@5 | {_f(p['recall_at_5'])} | {_f(p['recall_at_5_backbone'])} |", ""]
    if "pose" in m:
        ps = m["pose"]
        t = ps["thresholds"]
        lines += ["## Relative pose", "",
                  f"Success = error within {t['success_trans_m']} m and {t['success_rot_deg']}°; failures count as "
                  "infinite error. Bins: co-visibility (min of both directions). "
                  f"{ours}: features of ρ = {ps['radius_m']:g} m, 3D–3D matches by {ps['matching']}; raw "
                  f"backbone: by {ps['baseline_backbone']['matching']}.", "",
                  "| method | estimator | bin | pairs | median t (m) | median R (°) | success |",
                  "|---|---|---|---|---|---|---|"]
        for label, block in ((ours, ps), ("raw backbone", ps["baseline_backbone"]),
                             ("XFeat + LighterGlue", ps["baseline_lighterglue"])):
            for est, b in (("3D–3D", block), ("PnP", block["pnp"])):
                rows = [("all", b)] + list(b["bins"].items())
                for bin_, s in rows:
                    lines.append(f"| {label} | {est} | {bin_} | {s['pairs']} | {_f(s['median_trans_m'])} | "
                                 f"{_f(s['median_rot_deg'], 2)} | {_f(s['success_rate'], 2)} |")
        lines += ["", "Matches fed to the 3D–3D RANSAC: ground-truth 3D distance between the two ends of each match "
                  "(pairs pooled).", "",
                  f"| method | bin | matches/pair | median 3D error (m) | within {t['rigid_inlier_m']} m (inlier) | "
                  f"within ρ = {config.rho} m |",
                  "|---|---|---|---|---|---|"]
        for label, block in ((ours, ps), ("raw backbone", ps["baseline_backbone"]),
                             ("XFeat + LighterGlue", ps["baseline_lighterglue"])):
            for bin_, s in [("all", block)] + list(block["bins"].items()):
                lines.append(f"| {label} | {bin_} | {_f(s['matches_per_pair'], 1)} | {_f(s['match_median_error_m'])} | "
                             f"{_f(s['match_within_inlier_m'], 2)} | {_f(s['match_within_rho'], 2)} |")
        lines.append("")
    if "segmentation" in m:
        s = m["segmentation"]
        lines += ["## Segmentation", "",
                  f"{s['labelled_frames']} labelled frames → {s['held_out_frames']} held-out frames; mIoU over "
                  f"{s['miou_classes']}. {s['protocol']}.", "",
                  f"| | {ours} | raw backbone |", "|---|---|---|",
                  f"| mIoU, linear probe (the paper's protocol) | {_f(s['miou'])} | {_f(s['miou_backbone'])} |",
                  f"| mIoU, k-NN label transfer | {_f(s['knn_miou'])} | {_f(s['knn_miou_backbone'])} |"]
        if "instance_accuracy" in s:
            lines.append(f"| instance re-id accuracy | {_f(s['instance_accuracy'])} | "
                         f"{_f(s.get('instance_accuracy_backbone'))} |")
        lines.append("")
    if "consistency" in m:
        c = m["consistency"]
        lines += ["## 3D consistency (cosine at corresponding pixels)", "",
                  f"| viewpoint change (°) | pairs | {ours} | raw backbone |", "|---|---|---|---|"]
        for mine, base in zip(c["bins"], c["bins_backbone"]):
            lo, hi = mine["angle_deg"]
            lines.append(f"| {lo:g}–{hi:g} | {mine['pairs']} | {_f(mine['mean_cosine'])} | {_f(base['mean_cosine'])} |")
        lines += [f"| all | | {_f(c['mean_cosine'])} | {_f(c['mean_cosine_backbone'])} |", ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figures] + [""]
    lines += ["## Resolved config", "", "```yaml", yaml.safe_dump(config_to_dict(config), sort_keys=False).rstrip(),
              "```", ""]
    path.write_text("\n".join(lines))
    return path
