"""A vectorised numpy ray caster for boxes, vertical cylinders and spheres, with textures and
Lambertian lighting.

Speed comes from testing each primitive only on the pixels of its projected bounding rectangle,
and each room's primitives only inside the rectangle of the doorways it is seen through (portal
culling): every pixel meets a handful of primitives instead of all of them. Depth is exact
(ray/primitive intersection in float32 for a pinhole camera), so labels and depth agree exactly
with the geometry and the poses.
"""

from __future__ import annotations

import numpy as np

from locus_core.data.synthetic.errors import SyntheticError
from locus_core.data.synthetic.furniture import BOX, CYLINDER, SPHERE
from locus_core.data.synthetic.layout import Door, Room
from locus_core.data.synthetic.primitives import QUARTER_COS, QUARTER_SIN, Primitives

NEAR = 1e-3  # metres: nothing closer to the camera is drawn
_BITS = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], bool)
_EDGES = np.array([(i, i | b) for b in (1, 2, 4) for i in range(8) if not i & b])

Rendering = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class Renderer:
    def __init__(self, prims: Primitives, atlas: np.ndarray, material_texture: np.ndarray,
                 material_scale: np.ndarray, rooms: list[Room], doors: list[Door]) -> None:
        self.p = prims
        # RGB packed into one uint32 per texel: a 1-D take is far faster than gathering rows
        rgba = np.zeros((*atlas.shape[:3], 4), np.uint8)
        rgba[..., :3] = atlas
        self.atlas = rgba.view(np.uint32).ravel()
        self.tsize = atlas.shape[1]
        self.mat_tex = material_texture
        # texels per metre along u, and repeats per metre along v
        self.mat_inv_scale = (self.tsize / material_scale[:, 0], 1 / material_scale[:, 1])
        self.rooms, self.doors = rooms, doors
        openings = np.array([d.box() for d in doors], np.float32).reshape(-1, 2, 3)
        boxes_lo = np.concatenate([prims.lo, openings[:, 0]])
        boxes_hi = np.concatenate([prims.hi, openings[:, 1]])
        self._corners = np.where(_BITS[None], boxes_hi[:, None], boxes_lo[:, None])  # (N, 8, 3)
        self._members = [np.flatnonzero(prims.room == r.index) for r in rooms]
        room_light = np.array([[*r.centre, r.height - 0.3] for r in rooms], np.float32)
        self.lights = tuple(room_light[prims.room, j] for j in range(3))  # per primitive
        self._centre, self._radius = prims.centre, prims.radius
        f32 = np.float32
        self._per_prim = {
            "cos": QUARTER_COS[prims.quarter], "sin": QUARTER_SIN[prims.quarter],
            "ox": prims.origin[:, 0].copy(), "oy": prims.origin[:, 1].copy(),
            **{f"lo{j}": prims.local_lo[:, j].copy() for j in range(3)},
            **{f"ex{j}": (prims.local_hi[:, j] - prims.local_lo[:, j]).astype(f32) for j in range(3)},
            **{f"uv{j}": prims.uv_origin[:, j].copy() for j in range(3)},
            "kind": prims.kind, "material": prims.material, "semantic": prims.semantic,
            "instance": prims.instance,
        }

    def render(self, T_world_cam: np.ndarray, K: np.ndarray, size: tuple[int, int],
               lit: bool = True) -> Rendering:
        """Render one view (``lit=False``: plain texture colours, no lighting).

        Args:
            T_world_cam: (4, 4) camera-to-world pose, OpenCV axes (x right, y down, z forward).
            K: (3, 3) pinhole intrinsics (no skew) for an image of ``size``.
            size: (H, W).

        Returns:
            rgb (H, W, 3) uint8; depth (H, W) float32 metres along the optical axis, NaN where no
            surface; semantic (H, W) int32 class ids; instance (H, W) int32 ids (0 = none).
        """
        T, K, (H, W) = _check(T_world_cam, K, size)
        R, o = T[:3, :3].astype(np.float32), T[:3, 3].astype(np.float32)
        xc = ((np.arange(W, dtype=np.float64) - K[0, 2]) / K[0, 0]).astype(np.float32)
        yc = ((np.arange(H, dtype=np.float64) - K[1, 2]) / K[1, 1]).astype(np.float32)
        # world ray directions with unit camera-z, so the hit distance t is the depth
        d = [R[j, 0] * xc[None, :] + R[j, 1] * yc[:, None] + R[j, 2] for j in range(3)]
        inv = [1.0 / np.where(np.abs(c) < 1e-12, np.float32(1e-12), c) for c in d]
        rects = _rects(self._corners, R, o, K, H, W)
        zbuf = np.full((H, W), np.inf, np.float32)
        ids = np.full((H, W), -1, np.int32)
        n_prims = len(self.p)
        for room, view in self._visible_rooms(o, rects[n_prims:], H, W).items():
            members = self._members[room]
            r = rects[members]
            r = np.stack([np.maximum(r[:, 0], view[0]), np.minimum(r[:, 1], view[1]),
                          np.maximum(r[:, 2], view[2]), np.minimum(r[:, 3], view[3])], 1)
            keep = (r[:, 0] < r[:, 1]) & (r[:, 2] < r[:, 3])
            for i, (u0, u1, v0, v1) in zip(members[keep].tolist(), r[keep].tolist()):
                win = (slice(v0, v1), slice(u0, u1))
                t, hit = self._intersect(i, o, [c[win] for c in d], [c[win] for c in inv])
                zb = zbuf[win]
                closer = hit & (t < zb)
                np.copyto(zb, t, where=closer)
                np.copyto(ids[win], i, where=closer)
        return self._shade(o, d, zbuf, ids, lit)

    def _visible_rooms(self, o: np.ndarray, door_rects: np.ndarray, H: int, W: int
                       ) -> dict[int, tuple[int, int, int, int]]:
        """Room -> the image rectangle it can be seen in (its doorways' projections, chained)."""
        full = (0, W, 0, H)
        # Only a camera well inside a room sees out of it through doorways alone: from (almost) on
        # a wall, rays would slip through the wall before NEAR, so then everything is drawn.
        start = {r.index for r in self.rooms if r.contains(o, margin=-0.02)}
        for door, rect in zip(self.doors, door_rects):
            lo, hi = door.box()
            if np.all(o >= lo - 1e-4) and np.all(o <= hi + 1e-4):
                return {r.index: full for r in self.rooms}
        if not start:  # outside every room (a user's pose): draw everything everywhere
            return {r.index: full for r in self.rooms}
        seen = {r: full for r in start}
        queue = list(start)
        while queue:
            room = queue.pop()
            for door, rect in zip(self.doors, door_rects.tolist()):
                if room not in door.rooms:
                    continue
                other = door.rooms[1] if door.rooms[0] == room else door.rooms[0]
                if other in start:
                    continue
                v = seen[room]
                portal = (max(v[0], rect[0]), min(v[1], rect[1]), max(v[2], rect[2]), min(v[3], rect[3]))
                if portal[0] >= portal[1] or portal[2] >= portal[3]:
                    continue
                old = seen.get(other)
                new = portal if old is None else (min(old[0], portal[0]), max(old[1], portal[1]),
                                                  min(old[2], portal[2]), max(old[3], portal[3]))
                if new != old:
                    seen[other] = new
                    queue.append(other)
        return seen

    def _intersect(self, i: int, o: np.ndarray, d: list[np.ndarray], inv: list[np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray]:
        kind = self.p.kind[i]
        if kind == BOX:
            lo, hi = self.p.lo[i], self.p.hi[i]
            t1, t2 = (lo[0] - o[0]) * inv[0], (hi[0] - o[0]) * inv[0]
            near, far = np.minimum(t1, t2), np.maximum(t1, t2)
            for j in (1, 2):
                t1, t2 = (lo[j] - o[j]) * inv[j], (hi[j] - o[j]) * inv[j]
                np.maximum(near, np.minimum(t1, t2), out=near)
                np.minimum(far, np.maximum(t1, t2), out=far)
            return near, (near <= far) & (near > NEAR)
        c, r = self._centre[i] - o, self._radius[i]
        if kind == SPHERE:
            a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
            b = c[0] * d[0] + c[1] * d[1] + c[2] * d[2]
            disc = b * b - a * (c @ c - r * r)
            t = (b - np.sqrt(np.maximum(disc, 0))) / a
            return t, (disc >= 0) & (t > NEAR)
        # vertical cylinder: the side, then the one cap that faces the camera
        z0, z1 = self.p.lo[i, 2], self.p.hi[i, 2]
        a = np.maximum(d[0] * d[0] + d[1] * d[1], np.float32(1e-12))
        b = c[0] * d[0] + c[1] * d[1]
        disc = b * b - a * (c[0] * c[0] + c[1] * c[1] - r * r)
        t = (b - np.sqrt(np.maximum(disc, 0))) / a
        z = o[2] + t * d[2]
        t = np.where((disc >= 0) & (t > NEAR) & (z >= z0) & (z <= z1), t, np.float32(np.inf))
        if o[2] > z1 or o[2] < z0:
            tc = ((z1 if o[2] > z1 else z0) - o[2]) * inv[2]
            x, y = tc * d[0] - c[0], tc * d[1] - c[1]
            cap = (tc > NEAR) & (x * x + y * y <= r * r) & (tc < t)
            np.copyto(t, tc, where=cap)
        return t, np.isfinite(t)

    def _shade(self, o: np.ndarray, d: list[np.ndarray], zbuf: np.ndarray, ids: np.ndarray,
               lit: bool) -> Rendering:
        # Everything per pixel is done on flat 1-D arrays (contiguous, no (n, 3) strides), in the
        # model frame of the primitive hit: there box normals are axis-aligned and the light
        # vector is turned instead of the normal.
        H, W = ids.shape
        flat = ids.ravel()
        hit = flat >= 0
        idx = np.where(hit, flat, 0)
        t = np.where(hit, zbuf.ravel(), 0)
        g = self._per_prim
        px, py, pz = (o[j] + t * d[j].ravel() for j in range(3))
        cos, sin = g["cos"][idx], g["sin"][idx]
        rx, ry = px - g["ox"][idx], py - g["oy"][idx]
        lx, ly = cos * rx + sin * ry, cos * ry - sin * rx  # model frame (turned back)
        wx, wy, wz = self.lights[0][idx] - px, self.lights[1][idx] - py, self.lights[2][idx] - pz
        Lx, Ly = cos * wx + sin * wy, cos * wy - sin * wx
        # boxes: the face hit is the one the point is closest to
        q = [lx - g["lo0"][idx], ly - g["lo1"][idx], pz - g["lo2"][idx]]
        e = [g["ex0"][idx], g["ex1"][idx], g["ex2"][idx]]
        below = [np.abs(c) for c in q]
        above = [np.abs(ext - c) for ext, c in zip(e, q)]
        m = [np.minimum(a, b) for a, b in zip(below, above)]
        ax0 = (m[0] <= m[1]) & (m[0] <= m[2])
        ax1 = ~ax0 & (m[1] <= m[2])
        ax2 = ~(ax0 | ax1)
        facing = np.where(ax0, np.where(below[0] < above[0], -Lx, Lx),
                          np.where(ax1, np.where(below[1] < above[1], -Ly, Ly),
                                   np.where(below[2] < above[2], -wz, wz)))
        up = np.where(ax2 & (below[2] >= above[2]), np.float32(1), np.float32(0))
        w = [lx - g["uv0"][idx], ly - g["uv1"][idx], pz - g["uv2"][idx]]
        u = np.where(ax0, w[1], w[0])
        v = np.where(ax2, w[1], w[2])
        kind = g["kind"][idx]
        round_ = np.flatnonzero(kind != BOX)
        if len(round_):
            self._shade_round(round_, idx[round_], lx[round_], ly[round_], pz[round_], Lx[round_],
                              Ly[round_], wz[round_], kind[round_], facing, up, u, v)
        dist2 = wx * wx + wy * wy + wz * wz
        lambert = np.maximum(facing, 0) / np.sqrt(dist2)
        light = np.float32(0.35) + np.float32(0.9) * lambert / (1 + np.float32(0.06) * dist2) + 0.1 * up
        if not lit:
            light = np.ones_like(light)
        albedo = self._texture(g["material"][idx], u, v)
        rgb = np.empty((H * W, 3), np.uint8)
        for c in range(3):
            rgb[:, c] = np.minimum(albedo[c] * light, 255)
        rgb[~hit] = 0
        depth = np.where(hit, t, np.float32(np.nan)).reshape(H, W)
        semantic = np.where(hit, g["semantic"][idx], 0).reshape(H, W)
        instance = np.where(hit, g["instance"][idx], 0).reshape(H, W)
        return rgb.reshape(H, W, 3), depth, semantic, instance

    def _shade_round(self, sel: np.ndarray, idx: np.ndarray, lx: np.ndarray, ly: np.ndarray,
                     lz: np.ndarray, Lx: np.ndarray, Ly: np.ndarray, Lz: np.ndarray, kind: np.ndarray,
                     facing: np.ndarray, up: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Normals and texture coordinates of cylinder and sphere pixels (written at ``sel``)."""
        g = self._per_prim
        r = g["ex0"][idx] / 2
        half_h = g["ex2"][idx] / 2
        qx, qy = lx - g["lo0"][idx] - r, ly - g["lo1"][idx] - r
        qz = lz - g["lo2"][idx] - half_h
        radial = np.maximum(np.hypot(qx, qy), 1e-9)
        cyl = kind == CYLINDER
        cap = cyl & (np.abs(np.abs(qz) - half_h) < np.abs(radial - r))
        side = cyl & ~cap
        norm = np.where(cyl, radial, r)
        nx, ny, nz = qx / norm, qy / norm, np.where(cyl, 0, qz / r)
        nx[cap], ny[cap], nz[cap] = 0, 0, np.sign(qz[cap])
        facing[sel] = nx * Lx + ny * Ly + nz * Lz
        up[sel] = np.maximum(nz, 0)
        around = np.arctan2(qy, qx) * r
        u[sel] = np.where(cap, qx + r, around)
        v[sel] = np.where(cap, qy + r, np.where(side, qz + half_h,
                                                np.arccos(np.clip(qz / r, -1, 1)) * r))

    def _texture(self, material: np.ndarray, u: np.ndarray, v: np.ndarray) -> list[np.ndarray]:
        """R, G, B (n,) float32 in [0, 255]: bilinear, wrapped lookups (v runs up the image)."""
        T = self.tsize
        fu = u * self.mat_inv_scale[0][material] - np.float32(0.5)
        fv = (1 - v * self.mat_inv_scale[1][material]) * np.float32(T) - np.float32(0.5)
        u0, v0 = np.floor(fu), np.floor(fv)
        wu, wv = fu - u0, fv - v0
        base = self.mat_tex[material] * (T * T)
        u0, v0 = u0.astype(np.int64) & (T - 1), v0.astype(np.int64) & (T - 1)
        u1, v1 = (u0 + 1) & (T - 1), (v0 + 1) & (T - 1)
        v0, v1 = base + v0 * T, base + v1 * T
        weights = ((1 - wu) * (1 - wv), wu * (1 - wv), (1 - wu) * wv, wu * wv)
        out = [np.zeros(len(material), np.float32) for _ in range(3)]
        for index, w in zip((v0 + u0, v0 + u1, v1 + u0, v1 + u1), weights):
            texel = np.take(self.atlas, index).view(np.uint8).reshape(-1, 4)
            for c in range(3):
                out[c] += texel[:, c] * w
        return out


def _rects(corners: np.ndarray, R: np.ndarray, o: np.ndarray, K: np.ndarray, H: int, W: int
           ) -> np.ndarray:
    """(N, 4) int [u0, u1, v0, v1) pixel rectangles holding each box's projection (empty: u0 >= u1).

    Boxes crossing the near plane are clipped to it first, so the rectangle stays conservative.
    """
    near = NEAR
    cam = (corners - o) @ R  # (N, 8, 3) camera frame
    z = cam[..., 2]
    a, b = cam[:, _EDGES[:, 0]], cam[:, _EDGES[:, 1]]
    za, zb = a[..., 2], b[..., 2]
    crosses = (za > near) != (zb > near)
    s = np.where(crosses, (near - za) / np.where(crosses, zb - za, 1), 0)
    clipped = a + s[..., None] * (b - a)
    points = np.concatenate([cam, clipped], 1)
    valid = np.concatenate([z > near, crosses], 1)
    pz = np.where(valid, np.maximum(points[..., 2], near), 1.0)
    u = K[0, 0] * points[..., 0] / pz + K[0, 2]
    v = K[1, 1] * points[..., 1] / pz + K[1, 2]
    big = np.float32(1e9)
    umin = np.where(valid, u, big).min(1)
    umax = np.where(valid, u, -big).max(1)
    vmin = np.where(valid, v, big).min(1)
    vmax = np.where(valid, v, -big).max(1)
    rect = np.stack([np.floor(np.clip(umin, -1, W)), np.ceil(np.clip(umax, -1, W)) + 1,
                     np.floor(np.clip(vmin, -1, H)), np.ceil(np.clip(vmax, -1, H)) + 1], 1)
    rect[:, :2] = np.clip(rect[:, :2], 0, W)
    rect[:, 2:] = np.clip(rect[:, 2:], 0, H)
    return rect.astype(np.int64)


def _check(T: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    T, K = np.asarray(T, np.float64), np.asarray(K, np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise SyntheticError(f"render: T_world_cam must be a finite (4, 4) pose, got shape {T.shape}")
    if not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-5) or np.linalg.det(T[:3, :3]) < 0:
        raise SyntheticError("render: T_world_cam rotation is not a proper rotation matrix")
    if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0 or K[0, 1] != 0:
        raise SyntheticError(f"render: K must be (3, 3) with positive focal lengths and no skew, got {K.tolist()}")
    if len(size) != 2 or min(size) < 8:
        raise SyntheticError(f"render: size (H, W) must be at least 8x8 pixels, got {size}")
    return T, K, (int(size[0]), int(size[1]))
