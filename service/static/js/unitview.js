// One feature map large, beside the input, with the receptive field of a chosen unit drawn on it.

import { decimal, fillStats } from "./api.js";
import { drawMap, enlarge } from "./imaging.js";
import { clip, unitWindow } from "./fields.js";
import { describe } from "./summary.js";

const $ = (id) => document.getElementById(id);
const MAP_SIDE = 340; // CSS pixels the big map aims for
const INPUT_SCALE = 2; // the input canvas is drawn at twice the crop for crisp outlines

/** The large view; open() shows a channel, choose() a unit of it. */
export class UnitView {
  constructor() {
    this.state = null;
    this.small = document.createElement("canvas");
    const map = $("unit-map");
    map.addEventListener("click", (event) => {
      const box = map.getBoundingClientRect();
      const [rows, cols] = this.state.array.shape.slice(1);
      const row = Math.floor(((event.clientY - box.top) / box.height) * rows);
      const col = Math.floor(((event.clientX - box.left) / box.width) * cols);
      this.choose(row, col);
    });
    map.addEventListener("keydown", (event) => this.onKey(event));
  }

  close() {
    this.state = null;
    $("unit-view").hidden = true;
  }

  /** Show `channel` of `array` (C, H, W) and pick its most active unit. */
  open({ layer, channel, array, field, crop }) {
    const [, rows, cols] = array.shape;
    const offset = channel * rows * cols;
    const values = array.data.subarray(offset, offset + rows * cols);
    this.state = { layer, channel, array, field, crop, values, rows, cols };
    drawMap(this.small, array.data, offset, rows, cols);
    $("unit-view").hidden = false;
    $("unit-title").textContent = `${layer.name}, channel ${channel}`;
    $("unit-map-caption").textContent = `Feature map, ${rows} × ${cols}: click a unit, or focus ` +
      "it and use the arrow keys.";
    this.describeChannel(values);
    let best = 0;
    for (let i = 1; i < values.length; i += 1) if (values[i] > values[best]) best = i;
    this.choose(Math.floor(best / cols), best % cols);
    if (window.matchMedia("(max-width: 900px)").matches) $("unit-view").scrollIntoView({ block: "nearest" });
  }

  describeChannel(values) {
    const { mean, min, max, sparsity } = describe(values);
    fillStats($("channel-stats"), [["mean", decimal(mean)], ["min", decimal(min)],
      ["max", decimal(max)], ["zeros", `${(sparsity * 100).toFixed(1)} %`]]);
  }

  onKey(event) {
    if (!this.state) return;
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    this.choose(this.state.row + move[0], this.state.col + move[1]);
  }

  /** Select unit (row, col): outline it on the map and its receptive field on the input. */
  choose(row, col) {
    const s = this.state;
    s.row = Math.min(Math.max(row, 0), s.rows - 1);
    s.col = Math.min(Math.max(col, 0), s.cols - 1);
    const zoom = Math.max(1, Math.floor(MAP_SIDE / Math.max(s.rows, s.cols)));
    const context = enlarge($("unit-map"), this.small, zoom);
    const [x, y] = [s.col * zoom, s.row * zoom];
    context.strokeStyle = "rgba(255, 255, 255, 0.45)"; // cross-hairs: find the unit at a glance
    context.lineWidth = 1;
    context.beginPath();
    context.moveTo(0, y + zoom / 2);
    context.lineTo(x - 3, y + zoom / 2);
    context.moveTo(x + zoom + 3, y + zoom / 2);
    context.lineTo(context.canvas.width, y + zoom / 2);
    context.moveTo(x + zoom / 2, 0);
    context.lineTo(x + zoom / 2, y - 3);
    context.moveTo(x + zoom / 2, y + zoom + 3);
    context.lineTo(x + zoom / 2, context.canvas.height);
    context.stroke();
    outline(context, x - 2, y - 2, zoom + 4, zoom + 4);
    const seen = unitWindow(s.field, s.row, s.col);
    this.drawInput(seen);
    const value = s.values[s.row * s.cols + s.col];
    const last = (start) => start + seen.size - 1;
    const inside = clip(seen, s.crop.width);
    const partly = inside && (inside.bottom - inside.top < seen.size || inside.right - inside.left < seen.size);
    $("unit-text").textContent = `Unit (row ${s.row}, column ${s.col}) = ${decimal(value)}. ` +
      `It sees input rows ${seen.top}–${last(seen.top)} and columns ` +
      `${seen.left}–${last(seen.left)}, a square of ${seen.size} × ${seen.size} pixels; ` +
      `its neighbours look ${s.field.jump} px further on.` +
      (partly ? " Part of that square lies outside the image, in the zero padding." : "");
    $("unit-text").dataset.window = [seen.top, seen.left, seen.size].join(",");
  }

  drawInput(seen) {
    const canvas = $("unit-input");
    const crop = this.state.crop;
    canvas.width = crop.width * INPUT_SCALE;
    canvas.height = crop.height * INPUT_SCALE;
    const context = canvas.getContext("2d");
    context.drawImage(crop, 0, 0, canvas.width, canvas.height);
    const inside = clip(seen, crop.width);
    if (!inside) return;
    const [x, y] = [inside.left * INPUT_SCALE, inside.top * INPUT_SCALE];
    const [w, h] = [(inside.right - inside.left) * INPUT_SCALE, (inside.bottom - inside.top) * INPUT_SCALE];
    context.fillStyle = "rgba(0, 0, 0, 0.45)"; // dim what the unit cannot see
    context.beginPath();
    context.rect(0, 0, canvas.width, canvas.height);
    context.rect(x, y, w, h);
    context.fill("evenodd");
    outline(context, x, y, w, h);
  }
}

/** A yellow rectangle with a dark rim, visible on light and dark pictures alike. */
function outline(context, x, y, w, h) {
  context.lineWidth = 3;
  context.strokeStyle = "#111";
  context.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
  context.lineWidth = 1.5;
  context.strokeStyle = "#ffd43b";
  context.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
}
