"""The paper's evaluation tasks (patch retrieval, place recognition, relative pose, segmentation,
3D consistency) against the raw-backbone and XFeat+LighterGlue baselines; ``evaluate`` runs them all."""
