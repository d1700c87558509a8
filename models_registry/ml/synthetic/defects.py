"""The synthetic defects, drawn on the unit's own frame (canvas pixels) before the camera sees it:
scratches, cracks, stains, dead pixels, dust, fine-defect mode's hairlines and spots, and the
never-seen chip and bubble."""

from __future__ import annotations

import math

import numpy as np

from models_registry.ml.synthetic.drawing import (
    Canvas,
    blur,
    coverage,
    jagged_path,
    jagged_segment,
    smooth_1d,
    smooth_noise,
    span,
)
from models_registry.ml.types import NO_DEFECT


class DefectPainter:
    """The defect half of the renderer (`scene._Renderer`), which places the unit first: it reads
    the unit's canvas (`canvas_shape`, `canvas_center`, `canvas_screen`, `canvas_body`, the body's
    and screen's half sizes), draws into `add` and `dark` and keeps each instance's coverage."""

    def _screen_point(self, margin: float) -> np.ndarray:
        """A random point on the screen, in canvas pixels, at least `margin` from its edge."""
        span_a = max(self.screen_half_a - margin, 1.0)
        span_b = max(self.screen_half_b - margin, 1.0)
        offset = np.array([self.rng.uniform(-span_a, span_a), self.rng.uniform(-span_b, span_b)])
        return self.canvas_center + offset

    @property
    def screen_width(self) -> float:
        return 2 * self.screen_half_a

    def _instance_count(self, label: str) -> int:
        """How many instances a defective unit gets: one to three, at most two crack systems."""
        return int(self.rng.choice([1, 1, 1, 2] if label == "crack" else [1, 1, 1, 2, 2, 3]))

    def _visibility(self) -> float:
        """How strongly a defect shows: some are subtle, some obvious."""
        return float(self.rng.uniform(0.3, 1.0))

    def _keep(self, label: str, alpha: np.ndarray, window: tuple[slice, slice] | None = None) -> None:
        """Record an instance's coverage: canvas-sized, or over `window` of the canvas."""
        if window is not None:
            canvas_alpha = np.zeros(self.canvas_shape, dtype=np.float32)
            canvas_alpha[window] = alpha
            alpha = canvas_alpha
        self.instance_alphas.append((label, alpha.astype(np.float32)))

    def _canvas_window(self, points: np.ndarray, margin: float) -> tuple[slice, slice]:
        """The canvas pixels within `margin` of the bounding box of `points` (x, y)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        reach = int(math.ceil(margin))
        height, width = self.canvas_shape
        return span(points[:, 1], height, margin=reach), span(points[:, 0], width, margin=reach)

    def _window_grid(self, window: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        """Canvas x and y of the pixel centres of `window`."""
        rows, cols = window
        ys, xs = np.indices((rows.stop - rows.start, cols.stop - cols.start), dtype=np.float32)
        return xs + np.float32(cols.start + 0.5), ys + np.float32(rows.start + 0.5)

    def _dust(self) -> None:
        """Faint specks of dust on the glass: nuisances that are not defects."""
        rng = self.rng
        if rng.random() >= 0.35:
            return
        canvas = Canvas(self.canvas_shape)
        for _ in range(int(rng.integers(1, 5))):
            x, y = self.canvas_center + rng.uniform(-1, 1, 2) * [self.half_a, self.half_b]
            canvas.ellipse(x, y, max(0.5, rng.uniform(0.6, 1.3) * self.scale), rng.uniform(0.3, 1.0))
        alpha = canvas.coverage() * self.canvas_body
        self.add += alpha[..., None] * rng.uniform(0.03, 0.08)

    def _draw_scratch(self, count: int, glow: float) -> None:
        rng = self.rng
        s = self.scale
        parallel = count >= 2 and rng.random() < 0.6
        center = self._screen_point(0.1 * self.screen_width)
        angle = rng.uniform(0, math.pi)
        length = rng.uniform(0.10, 0.40) * self.screen_width
        bend = rng.uniform(-0.05, 0.05)
        for index in range(count):
            if parallel and index > 0:
                normal = np.array([-math.sin(angle), math.cos(angle)])
                along = np.array([math.cos(angle), math.sin(angle)])
                spacing = rng.uniform(4, 12) * max(s, 0.5)
                this_center = center + normal * spacing * index + along * rng.uniform(-0.15, 0.15) * length
                this_angle = angle + rng.normal(0, 0.02)
                this_length = length * rng.uniform(0.6, 1.1)
                this_bend = bend
            else:
                this_center = center if index == 0 else self._screen_point(0.1 * self.screen_width)
                this_angle = angle if index == 0 else rng.uniform(0, math.pi)
                this_length = length if index == 0 else rng.uniform(0.10, 0.40) * self.screen_width
                this_bend = bend if index == 0 else rng.uniform(-0.05, 0.05)
            samples = max(8, int(this_length / 3))
            t = np.linspace(-0.5, 0.5, samples)
            along = np.array([math.cos(this_angle), math.sin(this_angle)])
            normal = np.array([-along[1], along[0]])
            curve = this_bend * this_length * (1 - 4 * t**2)
            jitter = rng.normal(0, 0.15 * max(s, 0.5), samples)
            points = this_center + np.outer(t * this_length, along) + np.outer(curve + jitter, normal)
            envelope = np.clip(np.sin(np.pi * (t[:-1] + 0.5 + 0.5 / samples)) * 1.8, 0, 1) ** 0.7
            modulation = 0.6 + 0.4 * smooth_1d(rng, samples - 1, 6)
            gaps = np.where(smooth_1d(rng, samples - 1, 9) < -0.75, 0.2, 1.0)
            canvas = Canvas(self.canvas_shape)
            canvas.polyline(points, max(1.0, rng.uniform(1.0, 3.0) * s), envelope * modulation * gaps)
            alpha = canvas.coverage() * self.canvas_screen
            halo = blur(alpha, 1.5 * max(s, 0.5)) * 0.5
            strength = self._visibility() * rng.uniform(0.3, 0.75)
            color = np.array([1.0, 1.0, 1.04]) + rng.uniform(-0.03, 0.03, 3)
            self.add += (alpha + halo)[..., None] * (strength * color).astype(np.float32)
            self._keep("scratch", alpha)

    def _crack_paths(self) -> list[tuple[np.ndarray, float]]:
        """Polylines of one crack system, each with a brightness factor."""
        rng = self.rng
        s = max(self.defect_scale, 0.5)
        step = rng.uniform(3, 7) * s
        paths: list[tuple[np.ndarray, float]] = []

        def add_with_branches(path: np.ndarray, heading: float, remaining: float, depth: int) -> None:
            paths.append((path, rng.uniform(0.5, 1.0)))
            if depth > 1:
                return
            branch_chance = min(0.045, 1.2 / max(len(path), 1))
            for point_index in range(1, len(path) - 1):
                if rng.random() < branch_chance:
                    side = 1 if rng.random() < 0.5 else -1
                    branch_heading = heading + side * rng.uniform(0.35, 0.9)
                    branch_length = remaining * rng.uniform(0.15, 0.5)
                    branch = jagged_path(rng, path[point_index], branch_heading, branch_length, step, 0.1)
                    add_with_branches(branch, branch_heading, branch_length, depth + 1)

        if rng.random() < 0.7:
            # Spider pattern around an impact point.
            impact = self._screen_point(0.08 * self.screen_width)
            radials = int(rng.integers(4, 10))
            base = rng.uniform(0, 2 * math.pi)
            angles = base + 2 * math.pi * np.arange(radials) / radials + rng.normal(0, 0.25, radials)
            lengths = rng.uniform(0.1, 0.45, radials) * self.screen_width
            spokes = []
            for heading, length in zip(angles, lengths, strict=True):
                spoke = jagged_path(rng, impact, heading, length, step, 0.08)
                spokes.append(spoke)
                add_with_branches(spoke, heading, length, 0)
            for _ in range(int(rng.integers(0, 3))):
                radius = rng.uniform(0.2, 0.7) * float(lengths.min())
                for first, second in zip(spokes, spokes[1:] + spokes[:1], strict=True):
                    if rng.random() < 0.65:
                        a = first[np.argmin(np.abs(np.hypot(*(first - impact).T) - radius))]
                        b = second[np.argmin(np.abs(np.hypot(*(second - impact).T) - radius))]
                        paths.append((jagged_segment(rng, a, b, step), rng.uniform(0.4, 0.9)))
            crush = rng.uniform(2, 6) * s
            angles = np.sort(rng.uniform(0, 2 * math.pi, 9))
            radii = crush * rng.uniform(0.5, 1.2, 9)
            polygon = impact + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
            paths.append((polygon, -1.0))  # marker: filled crushed area
            for angle in rng.uniform(0, 2 * math.pi, int(rng.integers(6, 14))):
                reach = crush * rng.uniform(1.5, 3.5)
                paths.append(
                    (jagged_path(rng, impact, angle, reach, max(1.0, reach / 3), 0.3), rng.uniform(0.5, 1.0))
                )
        else:
            # A single long crack running in from an edge.
            side = int(rng.integers(4))
            along = rng.uniform(-0.8, 0.8)
            if side < 2:
                start = self.canvas_center + [
                    (-1 if side == 0 else 1) * self.screen_half_a,
                    along * self.screen_half_b,
                ]
                heading = (0.0 if side == 0 else math.pi) + rng.uniform(-0.5, 0.5)
            else:
                start = self.canvas_center + [
                    along * self.screen_half_a,
                    (-1 if side == 2 else 1) * self.screen_half_b,
                ]
                heading = (math.pi / 2 if side == 2 else -math.pi / 2) + rng.uniform(-0.5, 0.5)
            length = rng.uniform(0.3, 0.8) * self.screen_width
            add_with_branches(
                jagged_path(rng, np.asarray(start), heading, length, step, 0.07), heading, length, 0
            )
        return paths

    def _draw_crack(self, count: int, glow: float) -> None:
        rng = self.rng
        s = self.defect_scale
        for _ in range(count):
            core_width = max(1.0, rng.uniform(0.7, 1.4) * s)
            edge_width = core_width + max(1.0, rng.uniform(0.8, 1.6) * s)
            core = Canvas(self.canvas_shape)
            edge = Canvas(self.canvas_shape)
            for path, brightness in self._crack_paths():
                if brightness < 0:
                    edge.polygon(path, 0.9)
                    core.polygon(path, 0.3)
                    continue
                values = np.clip(brightness + 0.45 * smooth_1d(rng, len(path) - 1, 7), 0.15, 1.0)
                edge.polyline(path, edge_width, values)
                core.polyline(path, core_width, 1.0)
            core_alpha = core.coverage() * self.canvas_screen
            edge_alpha = edge.coverage() * self.canvas_screen
            strength = self._visibility() * rng.uniform(0.3, 0.7)
            color = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.04, 0.04, 3)
            bright = edge_alpha * (1 - 0.65 * core_alpha)
            self.add += bright[..., None] * (strength * color).astype(np.float32)
            self.dark = np.maximum(self.dark, core_alpha * rng.uniform(0.4, 0.8))
            self._keep("crack", np.maximum(edge_alpha, core_alpha))

    def _draw_stain(self, count: int, glow: float) -> None:
        rng = self.rng
        height, width = self.canvas_shape
        for _ in range(count):
            radius = rng.uniform(0.05, 0.16) * self.screen_width
            center = self._screen_point(0.3 * radius)
            reach = int(math.ceil(2.5 * radius))
            cx, cy = int(center[0]), int(center[1])
            r0, r1 = max(cy - reach, 0), min(cy + reach, height)
            c0, c1 = max(cx - reach, 0), min(cx + reach, width)
            ys, xs = np.mgrid[r0:r1, c0:c1].astype(np.float32) + 0.5
            field = np.zeros(ys.shape, dtype=np.float32)
            smear = rng.uniform(0, math.pi)
            for _ in range(int(rng.integers(2, 6))):
                offset = rng.normal(0, 0.4 * radius, 2)
                sigma_a, sigma_b = rng.uniform(0.4, 0.9) * radius, rng.uniform(0.2, 0.5) * radius
                theta = smear + rng.normal(0, 0.3)
                dx, dy = xs - center[0] - offset[0], ys - center[1] - offset[1]
                u = dx * math.cos(theta) + dy * math.sin(theta)
                v = -dx * math.sin(theta) + dy * math.cos(theta)
                field += rng.uniform(0.5, 1.0) * np.exp(-0.5 * ((u / sigma_a) ** 2 + (v / sigma_b) ** 2))
            field *= 0.85 + 0.2 * smooth_noise(rng, field.shape, (radius / 1.5, radius / 1.5))
            field /= max(float(field.max()), 1e-6)
            alpha = np.zeros(self.canvas_shape, dtype=np.float32)
            ramp = np.clip((field - 0.15) / 0.5, 0, 1)
            alpha[r0:r1, c0:c1] = ramp * ramp * (3 - 2 * ramp)
            alpha[r0:r1, c0:c1] *= 0.9 + 0.1 * smooth_noise(rng, field.shape, (radius / 8, radius / 8)).clip(
                -1, 1
            )
            alpha *= self.canvas_screen
            kind = rng.integers(4)
            if kind == 3:
                hue = np.zeros(self.canvas_shape, dtype=np.float32)
                hue[r0:r1, c0:c1] = rng.random() + 0.12 * smooth_noise(rng, field.shape, (radius, radius))
                phases = np.array([0.0, 1 / 3, 2 / 3], dtype=np.float32)
                tint = 0.75 + 0.25 * np.cos(2 * math.pi * (hue[..., None] + phases))
            else:
                tint = np.array([[1.0, 1.0, 1.0], [1.0, 0.9, 0.7], [0.85, 0.95, 1.1]][kind], dtype=np.float32)
            haze = self._visibility() * rng.uniform(0.1, 0.24)
            self.add += (alpha[..., None] * haze * tint).astype(np.float32)
            self.dark = np.maximum(self.dark, alpha * rng.uniform(0.1, 0.3))
            mask_alpha = np.zeros(self.canvas_shape, dtype=np.float32)
            mask_alpha[r0:r1, c0:c1] = (field >= 0.35).astype(np.float32)
            self._keep("stain", mask_alpha * self.canvas_screen)

    def _draw_dead_pixels(self, count: int, glow: float) -> None:
        rng = self.rng
        s = self.defect_scale
        for _ in range(count):
            center = self._screen_point(0.05 * self.screen_width)
            dots = int(rng.integers(2, 9))
            spread = rng.uniform(3, 14) * max(s, 0.5)
            dark = glow >= 0.09 and rng.random() < 0.5
            size = max(1.0, rng.uniform(2.8, 4.5) * s) if dark else max(1.0, rng.uniform(2.2, 4.0) * s)
            if rng.random() < 0.3:
                along = np.arange(dots) * size * rng.choice([1.0, 2.0])
                positions = (
                    center + np.stack([along, np.zeros(dots)], axis=1)[:, :: 1 if rng.random() < 0.5 else -1]
                )
            else:
                positions = center + rng.normal(0, spread / 2, (dots, 2))
            canvas = Canvas(self.canvas_shape)
            for x, y in positions:
                canvas.rectangle(round(x), round(y), round(x) + size, round(y) + size)
            alpha = canvas.coverage() * self.canvas_screen
            if dark:
                self.dark = np.maximum(self.dark, alpha * rng.uniform(0.75, 1.0))
            else:
                colors = np.array(
                    [[1, 1, 1], [1, 1, 1], [1, 0.2, 0.15], [0.2, 1, 0.25], [0.35, 0.5, 1], [0.3, 1, 1]]
                )
                color = colors[rng.integers(len(colors))].astype(np.float32)
                strength = 0.4 + 0.6 * self._visibility()
                self.add += alpha[..., None] * strength * color
            self._keep("dead_pixels", alpha)

    # Fine-defect mode (absolute camera pixels) ----------------------------------------------

    def _draw_fine(self, label: str, glow: float) -> np.ndarray:
        """Draw dust and the defects of fine-defect mode; return the dust's coverage (canvas-sized).

        They draw from a stream of their own, split off here: the rest of the photograph (glare,
        camera, noise) is then the same with or without the defect, so the same rng state with
        label="no_defect" renders the unit's clean twin. Dust specks that would touch a defect are
        left out, so that dust never lies in, or next to, a defect mask.
        """
        scene_rng = self.rng
        self.rng = np.random.default_rng(scene_rng.integers(2**63))
        specks = self._fine_dust()
        if label != NO_DEFECT:
            count = self._instance_count(label)
            fine_drawings = {"scratch": self._draw_hairlines, "stain": self._draw_spots}
            fine_drawings.get(label, getattr(self, f"_draw_{label}"))(count, glow)
        dust = np.zeros(self.canvas_shape, dtype=np.float32)
        for window, alpha, level in specks:
            rows, cols = window
            around = (
                slice(max(rows.start - 2, 0), rows.stop + 2),
                slice(max(cols.start - 2, 0), cols.stop + 2),
            )
            if any(instance_alpha[around].any() for _, instance_alpha in self.instance_alphas):
                continue
            self.add[window] += alpha[..., None] * np.float32(level)
            dust[window] = np.maximum(dust[window], alpha)
        self.rng = scene_rng
        return dust

    def _fine_dust(self) -> list[tuple[tuple[slice, slice], np.ndarray, float]]:
        """Specks of dust 1-2 px across and a few grey levels bright, anywhere on the phone.

        Nuisances, not defects: smaller and fainter than the smallest stain spot. Returns each
        speck's window, coverage and brightness.
        """
        rng = self.rng
        if rng.random() >= 0.6:
            return []
        specks = []
        for _ in range(int(rng.integers(1, 9))):
            center = self.canvas_center + rng.uniform(-1, 1, 2) * [self.half_a, self.half_b]
            radius = rng.uniform(0.5, 1.0)
            level = rng.uniform(0.01, 0.035)
            window = self._canvas_window(center, radius + 2)
            xs, ys = self._window_grid(window)
            alpha = coverage(np.hypot(xs - center[0], ys - center[1]) - radius) * self.canvas_body[window]
            if alpha.any():
                specks.append((window, alpha, level))
        return specks

    def _draw_hairlines(self, count: int, glow: float) -> None:
        """Fine-mode scratches: hairlines 1-2 px wide, 100-600 px long, 8-50 grey levels at their peak.

        Two or three of them are often parallel. A line fades towards its tips and stops at 30 % of
        its peak contrast; its mask is every pixel it covers (the anti-aliased coverage >= 0.25).
        """
        rng = self.rng
        parallel = count >= 2 and rng.random() < 0.6
        first_center, first_angle, first_length, first_bend = None, 0.0, 0.0, 0.0
        for index in range(count):
            if parallel and index > 0:
                along = np.array([math.cos(first_angle), math.sin(first_angle)])
                normal = np.array([-along[1], along[0]])
                spacing = rng.uniform(5, 16)
                center = (
                    first_center + normal * spacing * index + along * rng.uniform(-0.15, 0.15) * first_length
                )
                angle = first_angle + rng.normal(0, 0.02)
                length = first_length * rng.uniform(0.6, 1.1)
                bend = first_bend
            else:
                center = self._screen_point(0.05 * self.screen_width)
                angle = rng.uniform(0, math.pi)
                length = min(math.exp(rng.uniform(math.log(100), math.log(600))), 0.6 * self.screen_width)
                bend = rng.uniform(-0.03, 0.03)
                if index == 0:
                    first_center, first_angle, first_length, first_bend = center, angle, length, bend
            width = rng.uniform(1.0, 2.2)
            peak = math.exp(rng.uniform(math.log(8), math.log(50))) / 255
            samples = max(8, int(length / 3))
            t = np.linspace(-0.5, 0.5, samples)
            along = np.array([math.cos(angle), math.sin(angle)])
            normal = np.array([-along[1], along[0]])
            curve = bend * length * (1 - 4 * t**2)
            jitter = rng.normal(0, 0.1, samples)
            points = center + np.outer(t * length, along) + np.outer(curve + jitter, normal)
            tips = np.clip(np.sin(np.pi * (t[:-1] + 0.5 + 0.5 / samples)) * 3, 0, 1)
            values = tips * (0.75 + 0.25 * smooth_1d(rng, samples - 1, 6))
            # The line ends where it fades below 30 % of its peak: all that is drawn is in the mask.
            shown = np.flatnonzero(values >= 0.3)
            points, values = points[shown[0] : shown[-1] + 2], values[shown[0] : shown[-1] + 1]
            window = self._canvas_window(points, width + 2)
            light, shape = Canvas.over(window), Canvas.over(window)
            light.polyline(points, width, values)
            shape.polyline(points, width, 1.0)
            screen = self.canvas_screen[window]
            color = (np.array([1.0, 1.0, 1.04]) + rng.uniform(-0.03, 0.03, 3)) * peak
            self.add[window] += (light.coverage() * screen)[..., None] * color.astype(np.float32)
            self._keep("scratch", shape.coverage() * screen, window)

    def _draw_spots(self, count: int, glow: float) -> None:
        """Fine-mode stains: small soft spots 4-25 px across (residue, a particle under the glass).

        Brighter than the screen by 8-45 grey levels at the centre, or on a lit screen sometimes
        darker; the profile falls to a quarter of its peak at the spot's rim, where the mask ends.
        """
        rng = self.rng
        for _ in range(count):
            diameter = math.exp(rng.uniform(math.log(4), math.log(25)))
            radius = diameter / 2
            center = self._screen_point(diameter)
            aspect, angle, sharpness = rng.uniform(0.7, 1.0), rng.uniform(0, math.pi), rng.uniform(2, 4)
            window = self._canvas_window(center, 1.5 * radius + 2)
            xs, ys = self._window_grid(window)
            dx, dy = xs - center[0], ys - center[1]
            u = dx * math.cos(angle) + dy * math.sin(angle)
            v = -dx * math.sin(angle) + dy * math.cos(angle)
            distance = np.hypot(u, v / aspect) / radius
            alpha = np.exp(-math.log(4) * distance**sharpness) * self.canvas_screen[window]
            if glow >= 0.09 and rng.random() < 0.5:
                self.dark[window] = np.maximum(self.dark[window], alpha * rng.uniform(0.25, 0.6))
            else:
                tints = np.array([[1.0, 1.0, 1.0], [1.0, 0.93, 0.8], [0.9, 0.97, 1.08]])
                color = tints[rng.integers(len(tints))] * rng.uniform(8, 45) / 255
                self.add[window] += alpha[..., None] * color.astype(np.float32)
            self._keep("stain", alpha, window)

    def _draw_chip(self, count: int, glow: float) -> None:
        rng = self.rng
        s = max(self.defect_scale, 0.5)
        for _ in range(count):
            radius = rng.uniform(0.035, 0.075) * self.screen_width
            sign_a = 1 if rng.random() < 0.5 else -1
            sign_b = 1 if rng.random() < 0.5 else -1
            if rng.random() < 0.5:
                corner = np.array(
                    [sign_a * (self.half_a - self.body_radius), sign_b * (self.half_b - self.body_radius)]
                )
                point = corner + self.body_radius * np.array([sign_a, sign_b]) / math.sqrt(2)
            elif rng.random() < 0.5:
                point = np.array([rng.uniform(-0.8, 0.8) * self.half_a, sign_b * self.half_b])
            else:
                point = np.array([sign_a * self.half_a, rng.uniform(-0.6, 0.6) * self.half_b])
            inward = -point / max(float(np.hypot(*point)), 1e-6)
            center = self.canvas_center + point + inward * radius * rng.uniform(0.2, 0.6)
            vertices = int(rng.integers(9, 15))
            angles = np.sort(rng.uniform(0, 2 * math.pi, vertices))
            radii = radius * rng.uniform(0.55, 1.1, vertices)
            polygon = center + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
            fill = Canvas(self.canvas_shape)
            fill.polygon(polygon)
            alpha = fill.coverage() * self.canvas_body
            rim = Canvas(self.canvas_shape)
            rim.polyline(np.vstack([polygon, polygon[:1]]), max(1.0, 1.5 * s), 1.0)
            for _ in range(int(rng.integers(2, 5))):
                start = polygon[rng.integers(vertices)]
                heading = math.atan2(*(start - center)[::-1]) + rng.normal(0, 0.4)
                rim.polyline(
                    jagged_path(rng, start, heading, radius * rng.uniform(0.4, 1.2), 3 * s, 0.3), 1.0, 0.7
                )
            rim_alpha = rim.coverage() * self.canvas_body
            texture = 0.75 + 0.25 * smooth_noise(rng, self.canvas_shape, (2 * s, 2 * s)).clip(-1, 1)
            level = self._visibility() * rng.uniform(0.25, 0.45)
            exposed = (
                alpha * level * texture + rim_alpha * (1 - alpha) * level * 1.3 + alpha * rim_alpha * 0.2
            )
            self.add += exposed[..., None] * np.array([1.0, 0.98, 0.95], dtype=np.float32)
            self.dark = np.maximum(self.dark, alpha * 0.7)
            self._keep("chip", alpha)

    def _draw_bubble(self, count: int, glow: float) -> None:
        rng = self.rng
        s = max(self.defect_scale, 0.5)
        anchor = self._screen_point(0.1 * self.screen_width)
        light = rng.uniform(0, 2 * math.pi)
        for index in range(count):
            radius = rng.uniform(0.015, 0.05) * self.screen_width
            center = anchor if index == 0 else anchor + rng.normal(0, 0.06 * self.screen_width, 2)
            squash, tilt = rng.uniform(0.8, 1.0), rng.uniform(0, math.pi)
            da = self.canvas_a - (center[0] - self.canvas_center[0])
            db = self.canvas_b - (center[1] - self.canvas_center[1])
            u = da * math.cos(tilt) + db * math.sin(tilt)
            v = (-da * math.sin(tilt) + db * math.cos(tilt)) / squash
            distance = np.hypot(u, v)
            ring_width = max(0.7, rng.uniform(0.7, 1.2) * s)
            facing = (da * math.cos(light) + db * math.sin(light)) / np.maximum(distance, 1e-3)
            rim = np.exp(-0.5 * ((distance - radius) / ring_width) ** 2) * (0.6 + 0.4 * facing)
            inner = np.exp(-0.5 * ((distance - radius + 2.5 * ring_width) / ring_width) ** 2)
            inside = np.clip(1 - (distance / radius) ** 2, 0, 1)
            dome = inside * np.clip(0.5 + 0.5 * facing * distance / radius, 0, 1)
            strength = self._visibility()
            light_rgb = (rim * rng.uniform(0.2, 0.45) + dome * rng.uniform(0.02, 0.07)) * strength
            tint = np.ones(3, dtype=np.float32)
            if rng.random() < 0.5:
                # Newton's rings: faint interference colours in the thin air gap.
                phases = np.array([0.0, 1 / 3, 2 / 3], dtype=np.float32)
                rings = rng.uniform(3, 6) * (distance / radius) ** 2
                tint = (0.7 + 0.3 * np.cos(2 * math.pi * (rings[..., None] + phases))).astype(np.float32)
                light_rgb = light_rgb + inside * 0.03 * strength
            light_rgb = light_rgb * self.canvas_screen
            self.add += (light_rgb[..., None] * tint).astype(np.float32)
            self.dark = np.maximum(self.dark, inner * rng.uniform(0.2, 0.5) * strength * self.canvas_screen)
            self._keep("bubble", (distance <= radius + ring_width).astype(np.float32) * self.canvas_screen)
