// The zoom-and-pan stage of the station and labeling pages. The stage (the image and everything
// drawn over it, in the image's own pixels) is moved and scaled as one by a CSS transform inside
// the viewport; `--zoom` on the stage lets lines and captions keep their size on the screen.
//
// The wheel zooms about the pointer, a window resize fits the image again, and a pan started
// with startPan(event) follows the pointer (mouse, pen or finger: pointer events) until it is
// released. The viewport takes no touch gestures of the browser's own (touch-action: none). The
// zoom is one image pixel per CSS pixel at 1 (100 %); `zoomLabel`, when given, shows it as a
// percentage.

const WHEEL_STEP = 1.15;
const PIXELATED_FROM_ZOOM = 3; // from here on the image's pixels are shown as squares

export class Viewport {
  // `onChange()` runs after every change of zoom or pan.
  constructor(viewport, stage, { maxZoom = 40, minZoom = 0.05, onChange, zoomLabel } = {}) {
    this.viewport = viewport;
    this.stage = stage;
    this.maxZoom = maxZoom;
    this.minZoom = minZoom;
    this.onChange = onChange;
    this.zoomLabel = zoomLabel;
    this.size = null; // {width, height} of the image shown, in its pixels
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    this.pan = null; // the pan in progress: where it started, on the screen and on the stage

    viewport.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const bounds = viewport.getBoundingClientRect();
        const factor = event.deltaY < 0 ? WHEEL_STEP : 1 / WHEEL_STEP;
        this.zoomBy(factor, event.clientX - bounds.left, event.clientY - bounds.top);
      },
      { passive: false }
    );
    viewport.style.touchAction = "none";
    window.addEventListener("pointermove", (event) => {
      if (!this.pan || (this.pan.pointerId !== undefined && event.pointerId !== this.pan.pointerId)) return;
      this.panX = this.pan.panX + event.clientX - this.pan.clientX;
      this.panY = this.pan.panY + event.clientY - this.pan.clientY;
      this.apply();
    });
    window.addEventListener("pointerup", () => this.endPan());
    window.addEventListener("pointercancel", () => this.endPan());
    window.addEventListener("resize", () => this.fit());
  }

  get panning() {
    return Boolean(this.pan);
  }

  // A new image of width x height pixels on the stage (null: none), fitted to the viewport.
  show(width, height) {
    this.size = width ? { width, height } : null;
    if (!this.size && this.zoomLabel) this.zoomLabel.textContent = "–";
    this.fit();
  }

  fit() {
    if (!this.size) return;
    const { width, height } = this.size;
    const viewport = this.viewport;
    const scale = Math.min(viewport.clientWidth / width, viewport.clientHeight / height);
    this.zoom = scale;
    this.panX = (viewport.clientWidth - width * scale) / 2;
    this.panY = (viewport.clientHeight - height * scale) / 2;
    this.apply();
  }

  // Zoom by `factor` about a point of the viewport (its centre unless given), which stays put.
  zoomBy(factor, centerX, centerY) {
    const x = centerX === undefined ? this.viewport.clientWidth / 2 : centerX;
    const y = centerY === undefined ? this.viewport.clientHeight / 2 : centerY;
    const zoom = Math.min(this.maxZoom, Math.max(this.minZoom, this.zoom * factor));
    this.panX = x - ((x - this.panX) * zoom) / this.zoom;
    this.panY = y - ((y - this.panY) * zoom) / this.zoom;
    this.zoom = zoom;
    this.apply();
  }

  panBy(dx, dy) {
    this.panX += dx;
    this.panY += dy;
    this.apply();
  }

  startPan(event) {
    this.pan = { clientX: event.clientX, clientY: event.clientY, panX: this.panX, panY: this.panY, pointerId: event.pointerId };
    this.viewport.classList.add("dragging");
  }

  endPan() {
    if (!this.pan) return;
    this.pan = null;
    this.viewport.classList.remove("dragging");
  }

  // The image point under a pointer (or mouse) event, in image pixels (outside the image when the mouse is).
  imagePoint(event) {
    const bounds = this.viewport.getBoundingClientRect();
    return { x: (event.clientX - bounds.left - this.panX) / this.zoom, y: (event.clientY - bounds.top - this.panY) / this.zoom };
  }

  // Where an image point is on the screen, in client coordinates (as a mouse event's).
  screenPoint(x, y) {
    const bounds = this.viewport.getBoundingClientRect();
    return { x: bounds.left + this.panX + x * this.zoom, y: bounds.top + this.panY + y * this.zoom };
  }

  // A point ({x, y}) as [x, y] inside the image shown.
  clamp(point) {
    const { width, height } = this.size;
    return [Math.min(Math.max(point.x, 0), width), Math.min(Math.max(point.y, 0), height)];
  }

  // The box {x, y, width, height} spanned by two image points, inside the image shown.
  box(a, b) {
    const [x1, y1] = this.clamp({ x: Math.min(a.x, b.x), y: Math.min(a.y, b.y) });
    const [x2, y2] = this.clamp({ x: Math.max(a.x, b.x), y: Math.max(a.y, b.y) });
    return { x: x1, y: y1, width: x2 - x1, height: y2 - y1 };
  }

  view() {
    return { zoom: this.zoom, panX: this.panX, panY: this.panY };
  }

  apply() {
    const stage = this.stage;
    stage.style.transform = `translate(${this.panX}px, ${this.panY}px) scale(${this.zoom})`;
    stage.style.setProperty("--zoom", this.zoom);
    stage.classList.toggle("pixelated", this.zoom >= PIXELATED_FROM_ZOOM);
    if (this.zoomLabel) this.zoomLabel.textContent = `${Math.round(this.zoom * 100)} %`;
    if (this.onChange) this.onChange(this);
  }
}
