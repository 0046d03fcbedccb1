"""``WalkSpec`` (the knobs) and ``render_walk`` (spec -> :class:`SynthRecording`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from gaitdata.progress import progress_bar
from gaitdata.records import Extrinsics, Intrinsics
from gaitdata.synth.body import Appearance, body_prims, coco_joints_world, visibility
from gaitdata.synth.gait import Skeleton, rot_axis, skeleton_at
from gaitdata.synth.raycast import Buffers, Camera, Prim, cast, shade
from gaitdata.synth.recording import SynthRecording

DIRECTIONS = ("left_to_right", "right_to_left", "toward", "away", "oblique", "oblique_away")
DIRECTION_ALIASES = {
    "across": "left_to_right",
    "lr": "left_to_right",
    "rl": "right_to_left",
    "towards": "toward",
}
DEPTH_SCALE = 0.0010000000474974513  # float32(0.001) as RealSense stores it
RENDER_VERSION = 2  # bump when the same spec renders differently (cached sample sets are then rebuilt)


def normalise_direction(direction: str) -> str:
    d = DIRECTION_ALIASES.get(direction, direction)
    if d not in DIRECTIONS:
        raise ValueError(
            f"unknown walking direction {direction!r}; choose one of {', '.join(DIRECTIONS + tuple(DIRECTION_ALIASES))}"
        )
    return d


@dataclass(frozen=True)
class WalkSpec:
    """Everything that defines one synthetic recording (all knobs are deterministic given ``seed``).

    Frame numbers start at ``first_frame_number``; ``drop_colour``/``drop_depth`` list frame numbers to
    drop, ``drop_prob`` drops further frames at random in both streams. Depth frame j is captured at
    ``j / fps + depth_offset_ms`` (plus jitter) and shows the scene at that instant.
    """

    subject: str = "s00"
    seed: int = 0
    direction: str = "left_to_right"
    n_frames: int = 48
    fps: float = 30.0
    colour_size: tuple[int, int] = (640, 480)  # width, height
    depth_size: tuple[int, int] = (480, 360)
    with_depth: bool = True
    appearance: Appearance | None = None  # default: Appearance.from_seed(seed)
    distance: float | None = None  # camera -> walking line (m); default depends on the direction
    camera_height: float = 1.1
    camera_pitch_deg: float = 2.5  # tilted down
    baseline_m: float = 0.015  # depth -> colour translation along x
    extrinsic_rot_deg: tuple[float, float, float] = (0.25, -0.35, 0.15)  # small rotation about x, y, z
    drop_colour: tuple[int, ...] = ()
    drop_depth: tuple[int, ...] = ()
    drop_prob: float = 0.0
    depth_offset_ms: float = 0.0
    jitter_ms: float = 0.0
    depth_noise_mm: float = 0.0
    depth_holes: float = 0.0  # fraction of depth pixels set to 0 (no data)
    bystander: bool = False
    bystander_seed: int | None = None
    far_walkers: int = 0  # people walking across far behind the subject, at ``far_scale`` of its image height
    far_scale: float = 0.25
    phase: float | None = None  # gait phase at t = 0 (default: from the seed)
    first_frame_number: int = 0
    t0_ms: float = 1000.0
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", normalise_direction(self.direction))
        if self.n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {self.n_frames}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        for nm in ("colour_size", "depth_size"):
            w, h = getattr(self, nm)
            if w < 16 or h < 16:
                raise ValueError(f"{nm} must be at least 16x16, got {w}x{h}")
            object.__setattr__(self, nm, (int(w), int(h)))
        if not 0 <= self.drop_prob < 1:
            raise ValueError(f"drop_prob must be in [0, 1), got {self.drop_prob}")
        if not 0 <= self.depth_holes < 1:
            raise ValueError(f"depth_holes must be in [0, 1), got {self.depth_holes}")
        if self.far_walkers < 0 or not 0.05 <= self.far_scale <= 1:
            raise ValueError(f"far_walkers must be >= 0 and far_scale in [0.05, 1], got {self.far_walkers}, {self.far_scale}")
        if self.jitter_ms < 0 or self.depth_noise_mm < 0:
            raise ValueError("jitter_ms and depth_noise_mm must be >= 0")
        object.__setattr__(self, "drop_colour", tuple(int(x) for x in self.drop_colour))
        object.__setattr__(self, "drop_depth", tuple(int(x) for x in self.drop_depth))

    @property
    def recording_name(self) -> str:
        return self.name or f"{self.subject}_{self.direction}_{self.seed}"

    def look(self) -> Appearance:
        return self.appearance or Appearance.from_seed(self.seed)


# ---- cameras ---------------------------------------------------------------------------------------


def colour_intrinsics(width: int, height: int) -> Intrinsics:
    """A RealSense-like colour camera (about 55 degrees horizontal field of view at 4:3)."""
    f = 615.0 * width / 640.0
    return Intrinsics(width, height, fx=f, fy=f * 1.002, cx=(width - 1) / 2 + 3.1 * width / 640, cy=(height - 1) / 2 - 2.3 * width / 640,
                      model="brown_conrady", coeffs=(0.0, 0.0, 0.0, 0.0, 0.0))  # fmt: skip


def depth_intrinsics(width: int, height: int) -> Intrinsics:
    """A wider depth camera (about 72 degrees horizontal)."""
    f = 330.0 * width / 480.0
    return Intrinsics(width, height, fx=f, fy=f, cx=(width - 1) / 2 - 1.7 * width / 480, cy=(height - 1) / 2 + 1.2 * width / 480,
                      model="brown_conrady", coeffs=(0.0, 0.0, 0.0, 0.0, 0.0))  # fmt: skip


def rig(spec: WalkSpec) -> tuple[Camera, Camera, Extrinsics]:
    """Colour camera, depth camera and the depth -> colour extrinsic of ``spec``."""
    flip = np.diag(
        [1.0, -1.0, -1.0]
    )  # world (X right, Y up, Z to camera) -> camera (x right, y down, z ahead)
    pitch = np.radians(spec.camera_pitch_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    R_c = rx @ flip
    C = np.array([0.0, spec.camera_height, 0.0])
    t_c = -R_c @ C
    ax, ay, az = np.radians(spec.extrinsic_rot_deg)
    R_dc = (
        rot_axis(np.array([0, 0, 1.0]), az)
        @ rot_axis(np.array([0, 1.0, 0]), ay)
        @ rot_axis(np.array([1.0, 0, 0]), ax)
    )
    t_dc = np.array([spec.baseline_m, 0.0002, -0.0004])
    ext = Extrinsics(rotation=tuple(R_dc.ravel()), translation=tuple(t_dc))
    colour = Camera(colour_intrinsics(*spec.colour_size), R_c, t_c)
    depth = Camera(depth_intrinsics(*spec.depth_size), R_dc.T @ R_c, R_dc.T @ (t_c - t_dc))
    return colour, depth, ext


# ---- paths -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Path3D:
    origin: np.ndarray
    heading: np.ndarray
    wall_z: float


def walk_path(spec: WalkSpec, travel: float) -> Path3D:
    d = spec.direction
    if d in ("left_to_right", "right_to_left"):
        dist = spec.distance or 4.1
        sgn = 1.0 if d == "left_to_right" else -1.0
        return Path3D(np.array([-sgn * travel / 2, 0.0, -dist]), np.array([sgn, 0.0, 0.0]), -(dist + 1.6))
    if d in ("toward", "away"):
        near = spec.distance or 3.0
        x = 0.12
        if d == "toward":
            return Path3D(
                np.array([x, 0.0, -(near + travel)]), np.array([0.0, 0.0, 1.0]), -(near + travel + 1.8)
            )
        return Path3D(np.array([x, 0.0, -near]), np.array([0.0, 0.0, -1.0]), -(near + travel + 1.8))
    mid = spec.distance or 3.9
    h = np.array([1.0, 0.0, 1.0]) / np.sqrt(2.0)
    if d == "oblique_away":
        h = -h
    centre = np.array([0.0, 0.0, -mid])
    return Path3D(centre - h * travel / 2, h, -(mid + travel / 2 + 1.8))


# ---- background ------------------------------------------------------------------------------------

_LIGHT_W = np.array([-0.45, 0.80, 0.55]) / np.linalg.norm([-0.45, 0.80, 0.55])


@dataclass(frozen=True)
class Background:
    colour: np.ndarray  # (H, W, 3) uint8
    z: np.ndarray  # (H, W) float64 camera z (metres)
    floor_xz: np.ndarray  # (H, W, 2) world X, Z of floor pixels (NaN elsewhere)


def background(cam: Camera, wall_z: float, with_colour: bool = True) -> Background:
    xs, ys = cam.rays()
    X, Y = np.meshgrid(xs, ys)
    d_cam = np.stack([X, Y, np.ones_like(X)], axis=-1)
    d_w = d_cam @ cam.R  # R^T d
    C = -cam.R.T @ cam.t
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d_w[..., 1] < -1e-9, -C[1] / d_w[..., 1], np.inf)
        t_wall = np.where(d_w[..., 2] < -1e-9, (wall_z - C[2]) / d_w[..., 2], np.inf)
    floor = t_floor < t_wall
    z = np.minimum(t_floor, t_wall)
    z = np.where(np.isfinite(z), z, 0.0)
    P = C + d_w * z[..., None]
    floor_xz = np.where(floor[..., None], P[..., [0, 2]], np.nan)
    if not with_colour:
        return Background(np.zeros((*z.shape, 3), np.uint8), z, floor_xz)
    # floor: light grey-beige lino with faint tiles; wall: off-white with a skirting board
    fx, fz = P[..., 0], P[..., 2]
    tile = ((np.floor(fx / 0.6) + np.floor(fz / 0.6)) % 2) * 0.035
    grout = (
        (np.abs((fx / 0.6) - np.round(fx / 0.6)) < 0.012) | (np.abs((fz / 0.6) - np.round(fz / 0.6)) < 0.012)
    ) * 0.06
    dist = np.hypot(fx, fz - C[2])
    fall = np.clip(1.05 - 0.035 * dist, 0.75, 1.0)
    floor_rgb = np.stack([0.62, 0.58, 0.52], -1)[None, None, :] * ((1 - tile - grout) * fall)[..., None]
    wy = P[..., 1]
    wall_rgb = np.where((wy < 0.12)[..., None], np.array([0.45, 0.42, 0.40]), np.array([0.80, 0.79, 0.75]))
    wall_rgb = wall_rgb * np.clip(0.92 + 0.04 * wy, 0.9, 1.05)[..., None]
    rgb = np.where(floor[..., None], floor_rgb, wall_rgb)
    return Background(np.clip(rgb * 255, 0, 255).astype(np.uint8), z, floor_xz)


def _apply_shadow(
    img: np.ndarray, bg: Background, cam: Camera, centres: list[tuple[np.ndarray, float, float]]
) -> None:
    """Darken the floor under the walker: soft Gaussian blobs (world X, Z, sigma, strength)."""
    if not centres:
        return
    pts = []
    for c, sig, _ in centres:
        for dx in (-3 * sig, 3 * sig):
            for dz in (-3 * sig, 3 * sig):
                pts.append([c[0] + dx, 0.0, c[1] + dz])
    pc = cam.to_cam(np.array(pts))
    if np.any(pc[:, 2] <= 0.05):
        y0, x0, y1, x1 = 0, 0, cam.height, cam.width
    else:
        uv = cam.project(pc)
        x0 = max(int(uv[:, 0].min()) - 1, 0)
        x1 = min(int(uv[:, 0].max()) + 2, cam.width)
        y0 = max(int(uv[:, 1].min()) - 1, 0)
        y1 = min(int(uv[:, 1].max()) + 2, cam.height)
    if x0 >= x1 or y0 >= y1:
        return
    fxz = bg.floor_xz[y0:y1, x0:x1]
    dark = np.zeros(fxz.shape[:2])
    for c, sig, k in centres:
        d2 = (fxz[..., 0] - c[0]) ** 2 + (fxz[..., 1] - c[1]) ** 2
        dark = np.maximum(dark, k * np.exp(-d2 / (2 * sig * sig)))
    dark = np.nan_to_num(dark, nan=0.0)
    win = img[y0:y1, x0:x1]
    win[:] = (win * (1.0 - dark[..., None])).astype(np.uint8)


# ---- the walk --------------------------------------------------------------------------------------


@dataclass
class _Walker:
    appearance: Appearance
    origin: np.ndarray
    heading: np.ndarray
    phase: float
    person: int

    def skeleton(self, t: float) -> Skeleton:
        return skeleton_at(t, self.appearance.dims, self.origin, self.heading, self.phase)


@dataclass
class _Scene:
    walkers: list[_Walker] = field(default_factory=list)

    def at(self, t: float) -> tuple[list[Prim], list[Skeleton]]:
        prims: list[Prim] = []
        skels = []
        for w in self.walkers:
            sk = w.skeleton(t)
            skels.append(sk)
            prims += body_prims(sk, w.appearance, w.person)
        return prims, skels


def _timeline(
    spec: WalkSpec, rng: np.random.Generator, drops: tuple[int, ...], offset: float
) -> tuple[np.ndarray, np.ndarray]:
    n = spec.n_frames
    numbers = spec.first_frame_number + np.arange(n, dtype=np.int64)
    period = 1000.0 / spec.fps
    ts = spec.t0_ms + offset + np.arange(n) * period
    if spec.jitter_ms > 0:
        ts = ts + np.clip(rng.normal(0.0, spec.jitter_ms, n), -0.4 * period, 0.4 * period)
    keep = ~np.isin(numbers, np.asarray(drops, dtype=np.int64))
    if spec.drop_prob > 0:
        keep &= rng.random(n) >= spec.drop_prob
    if not keep.any():
        keep[0] = True
    return numbers[keep], ts[keep]


def _silhouette_boxes(buf: Buffers, prims: list[Prim], n_people: int) -> np.ndarray:
    """COCO boxes (x, y, w, h) of each walker's visible pixels; zeros when not in view."""
    out = np.zeros((n_people, 4))
    y0, x0, y1, x1 = buf.box
    if y1 <= y0 or not prims:
        return out
    owner = np.array([p.person for p in prims] + [-1], dtype=np.int16)
    who = owner[buf.ids[y0:y1, x0:x1]]  # index -1 (background) maps to the trailing -1
    for k in range(n_people):
        m = who == k
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if len(rows):
            out[k] = (x0 + cols[0], y0 + rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1)
    return out


def _depth_units(z: np.ndarray, scale: float) -> np.ndarray:
    mm = np.round(z / scale)
    return np.clip(np.where(np.isfinite(mm), mm, 0), 0, 65535).astype(np.uint16)


def render_walk(spec: WalkSpec, progress: bool = False) -> SynthRecording:
    """Render a synthetic RGB-D gait recording with ground truth (deterministic given ``spec``)."""
    rng = np.random.default_rng([spec.seed, 0x5EED])
    app = spec.look()
    s = app.dims.s
    duration = (spec.n_frames - 1) / spec.fps
    speed = 1.2 * np.sqrt(s)
    path = walk_path(spec, speed * duration)
    phase = spec.phase if spec.phase is not None else float(rng.random())
    scene = _Scene([_Walker(app, path.origin, path.heading, phase, 0)])
    wall_z = path.wall_z
    if spec.bystander:
        bseed = spec.bystander_seed if spec.bystander_seed is not None else spec.seed + 1000
        bapp = Appearance.from_seed(bseed)
        bz = min(path.origin[2], (path.origin + path.heading * speed * duration)[2]) - 1.2
        wall_z = min(wall_z, bz - 1.0)
        bspeed = 1.2 * np.sqrt(bapp.dims.s)
        heading = np.array([-1.0, 0.0, 0.0]) if path.heading[0] >= 0 else np.array([1.0, 0.0, 0.0])
        start_x = -heading[0] * (bspeed * duration / 2 + 0.6)
        scene.walkers.append(_Walker(bapp, np.array([start_x, 0.0, bz]), heading, float(rng.random()), 1))

    if spec.far_walkers:
        near = float(np.linalg.norm(path.origin[[0, 2]] + path.heading[[0, 2]] * speed * duration / 2))
        fz = -near / spec.far_scale
        wall_z = min(wall_z, fz - 2.0)
        half = abs(fz) * (spec.colour_size[0] / 2) / colour_intrinsics(*spec.colour_size).fx  # half view width there
        for k in range(spec.far_walkers):
            fapp = Appearance.from_seed(spec.seed + 2000 + k)
            heading = np.array([1.0 if k % 2 == 0 else -1.0, 0.0, 0.0])
            side = -1.0 if k % 2 == 0 else 1.0  # left and right of the subject, alternately, outwards
            x = side * half * (0.45 + 0.4 * (k // 2 + 0.5) / max((spec.far_walkers + 1) // 2, 1))
            x -= heading[0] * 1.2 * np.sqrt(fapp.dims.s) * duration / 2
            scene.walkers.append(_Walker(fapp, np.array([x, 0.0, fz]), heading, float(rng.random()), len(scene.walkers)))

    cam_c, cam_d, ext = rig(spec)
    bg_c = background(cam_c, wall_z)
    rays_c = cam_c.rays()
    light_c = cam_c.R @ _LIGHT_W
    up_c = cam_c.R @ np.array([0.0, 1.0, 0.0])

    c_numbers, c_ts = _timeline(spec, rng, spec.drop_colour, 0.0)
    H, W = spec.colour_size[1], spec.colour_size[0]
    n = len(c_numbers)
    colour = np.empty((n, H, W, 3), np.uint8)
    depth_reg = np.empty((n, H, W), np.uint16)
    kp2d = np.zeros((n, 17, 3), np.float64)
    j3d = np.zeros((n, 17, 3), np.float64)
    others_kp = np.zeros((n, len(scene.walkers) - 1, 17, 3), np.float64)  # every walker but the subject
    boxes = np.zeros((n, len(scene.walkers), 4), np.float64)  # visible silhouette (x, y, w, h) per walker
    normal = np.zeros((H, W, 3), np.float64)
    albedo = np.zeros((H, W, 3), np.float32)
    specb = np.zeros((H, W), np.float32)
    for i in progress_bar(range(n), desc=f"render {spec.recording_name}", unit="frame", enabled=progress):
        t = (c_ts[i] - spec.t0_ms) / 1000.0
        prims, skels = scene.at(t)
        buf = Buffers(
            z=bg_c.z.copy(), ids=np.full((H, W), -1, np.int16), normal=normal, albedo=albedo, spec=specb
        )
        cast(cam_c, prims, buf, True, rays_c)
        img = bg_c.colour.copy()
        blobs = []
        for sk in skels:
            p = sk.joints["pelvis"]
            blobs.append((np.array([p[0], p[2]]), 0.22 * s, 0.35))
            for side in ("left", "right"):
                f = 0.5 * (sk.joints[f"{side}_heel_c"] + sk.joints[f"{side}_toe_c"])
                k = 0.45 * float(np.clip(1.0 - f[1] / 0.25, 0.0, 1.0))
                blobs.append((np.array([f[0], f[2]]), 0.09 * s, k))
        _apply_shadow(img, bg_c, cam_c, blobs)
        shade(cam_c, buf, img, light_c, up_c, rays_c)
        colour[i] = img
        depth_reg[i] = _depth_units(buf.z, DEPTH_SCALE)
        boxes[i] = _silhouette_boxes(buf, prims, len(scene.walkers))
        for w_i, w in enumerate(scene.walkers):
            pts = cam_c.to_cam(coco_joints_world(skels[w_i], w.appearance))
            uv = cam_c.project(pts)
            v = visibility(uv, pts[:, 2], buf, prims, w.person, W, H)
            kp = np.concatenate([uv, v[:, None].astype(np.float64)], axis=1)
            kp[v == 0, :2] = 0.0
            if w_i == 0:
                kp2d[i], j3d[i] = kp, pts
            else:
                others_kp[i, w_i - 1] = kp

    depth = d_numbers = d_ts = None
    d_intr = None
    if spec.with_depth:
        bg_d = background(cam_d, wall_z, with_colour=False)
        rays_d = cam_d.rays()
        d_numbers, d_ts = _timeline(spec, rng, spec.drop_depth, spec.depth_offset_ms)
        Hd, Wd = spec.depth_size[1], spec.depth_size[0]
        depth = np.empty((len(d_numbers), Hd, Wd), np.uint16)
        for j in range(len(d_numbers)):
            t = (d_ts[j] - spec.t0_ms) / 1000.0
            prims, _ = scene.at(t)
            buf = Buffers(z=bg_d.z.copy(), ids=np.full((Hd, Wd), -1, np.int16))
            cast(cam_d, prims, buf, False, rays_d)
            z = buf.z
            if spec.depth_noise_mm > 0:
                z = z + rng.normal(0.0, spec.depth_noise_mm / 1000.0, z.shape)
            d = _depth_units(z, DEPTH_SCALE)
            if spec.depth_holes > 0:
                d[rng.random(d.shape) < spec.depth_holes] = 0
            depth[j] = d
        d_intr = cam_d.intrinsics

    meta = {
        "spec": _spec_dict(spec),
        "appearance": asdict(app),
        "direction": spec.direction,
        "seed": spec.seed,
        "phase": phase,
        "camera_height": spec.camera_height,
        "colour_R_world": cam_c.R.tolist(),
        "colour_t_world": cam_c.t.tolist(),
        "keypoint_convention": "COCO: pixel centres at integer + 0.5; v=0 joints have x = y = 0",
        "render_version": RENDER_VERSION,
    }
    meta["bboxes"] = boxes[:, 0]
    if spec.bystander:
        meta["bystander_keypoints_2d"] = others_kp[:, 0]
        meta["bystander_bboxes"] = boxes[:, 1]
    if len(scene.walkers) > 1:  # the bystander first, then the far walkers
        meta["others_keypoints_2d"] = others_kp
        meta["others_bboxes"] = boxes[:, 1:]
    return SynthRecording(
        name=spec.recording_name, fps=float(spec.fps),
        colour=colour, colour_ts_ms=c_ts.astype(np.float64), colour_frame_numbers=c_numbers.astype(np.int64),
        colour_intrinsics=cam_c.intrinsics,
        depth=depth, depth_ts_ms=None if d_ts is None else d_ts.astype(np.float64),
        depth_frame_numbers=None if d_numbers is None else d_numbers.astype(np.int64), depth_intrinsics=d_intr,
        depth_to_colour=ext if spec.with_depth else Extrinsics(), depth_scale=DEPTH_SCALE,
        keypoints_2d=kp2d, joints_3d=j3d, depth_registered=depth_reg, subject=spec.subject, meta=meta,
    )  # fmt: skip


def _spec_dict(spec: WalkSpec) -> dict:
    d = asdict(spec)
    d["appearance"] = None if spec.appearance is None else asdict(spec.appearance)
    return d
