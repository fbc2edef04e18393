"""The GAN tab's seed-plane pad and its styles: a 2-D pad where dragging moves the orange dot through the
seed plane (right: x grows, down: y grows); the grid lines are the integer points, each exactly a seed."""
from __future__ import annotations

from modules.generation.seeds import PLANE_WIDTH

PAD_CELL_PX = 48  # one seed step of the plane pad

PAD_HTML = ('<div class="gan-pad" title="Drag to move the dot through the seed plane">'
            '<div class="gan-pad-dot"></div><span class="gan-pad-label"></span></div>')
# The dot stays in the middle and the grid scrolls under it, the way of a map's "you are here": dragging
# right moves the dot right over the grid, so the grid slides left. (Dragging the grid itself, as it
# did first, moved x the opposite way to the hand.)
PAD_JS = """
const CELL = %d, WIDTH = %d;
const pad = () => element.querySelector('.gan-pad');
const parse = (v) => { const p = String(v || '0,0').split(',').map(Number);
  return [Number.isFinite(p[0]) ? p[0] : 0, Number.isFinite(p[1]) ? p[1] : 0]; };
function place() {
  const el = pad(); if (!el) return;
  const [x, y] = parse(props.value);
  el.style.backgroundPosition = `${el.clientWidth / 2 - x * CELL}px ${el.clientHeight / 2 - y * CELL}px`;
  const seed = Math.round(x) + Math.round(y) * WIDTH;
  el.querySelector('.gan-pad-label').textContent = `x ${x.toFixed(2)}  y ${y.toFixed(2)}  ·  nearest seed ${seed}`;
}
let start = null;
element.addEventListener('pointerdown', (e) => {
  const el = pad(); if (!el || !el.contains(e.target)) return;
  start = {px: e.clientX, py: e.clientY, xy: parse(props.value)};
  el.setPointerCapture(e.pointerId); el.classList.add('dragging'); e.preventDefault();
});
element.addEventListener('pointermove', (e) => {
  if (!start) return;
  const x = Math.max(0, start.xy[0] + (e.clientX - start.px) / CELL);
  const y = Math.max(0, start.xy[1] + (e.clientY - start.py) / CELL);
  props.value = `${x.toFixed(3)},${y.toFixed(3)}`;
  place(); trigger('drag');
});
const stop = () => { if (!start) return; start = null; const el = pad(); if (el) el.classList.remove('dragging'); };
element.addEventListener('pointerup', stop);
element.addEventListener('pointercancel', stop);
watch('value', place);
new ResizeObserver(place).observe(element);
place();
""" % (PAD_CELL_PX, PLANE_WIDTH)

# Gallery captions wrap inside their thumbnail instead of ending in "…" ("Seed 0 · blue…" hid the class);
# the plane's x and y boxes are wide enough for "123.456" and have no spinner over the last digit.
HEAD = """<style>
#gan_gallery img, #gan_plane_image img, #gan_video_gif img { image-rendering: pixelated; }
#gan_gallery .caption { white-space: normal; overflow: visible; text-overflow: clip; }
#gan_gallery .caption-label { white-space: normal; overflow: visible; text-overflow: clip; max-width: none;
  left: var(--block-label-margin); overflow-wrap: anywhere; }
#gan_plane_x input, #gan_plane_y input { min-width: 7ch; -moz-appearance: textfield; appearance: textfield; }
#gan_plane_x input::-webkit-inner-spin-button, #gan_plane_y input::-webkit-inner-spin-button,
#gan_plane_x input::-webkit-outer-spin-button, #gan_plane_y input::-webkit-outer-spin-button {
  -webkit-appearance: none; margin: 0; }
.gan-pad { position: relative; height: 200px; border-radius: 6px; cursor: grab; touch-action: none; user-select: none;
  background-color: #fafafa; border: 1px solid #ddd;
  background-image: linear-gradient(#c8c8c8 1px, transparent 1px), linear-gradient(90deg, #c8c8c8 1px, transparent 1px);
  background-size: %dpx %dpx; }
.gan-pad.dragging { cursor: grabbing; }
.gan-pad-dot { position: absolute; left: 50%%; top: 50%%; width: 12px; height: 12px; margin: -6px 0 0 -6px;
  border-radius: 50%%; background: #f97316; box-shadow: 0 0 0 2px #fff; pointer-events: none; }
.gan-pad-label { position: absolute; left: 6px; bottom: 4px; padding: 1px 6px; font: 12px ui-monospace, monospace;
  color: #333; background: rgba(255, 255, 255, .85); border-radius: 4px; pointer-events: none; }
</style>""" % (PAD_CELL_PX, PAD_CELL_PX)
