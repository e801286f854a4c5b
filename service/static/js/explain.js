// The explain view: occlusion sensitivity and Grad-CAM for one class, over the network's crop.
// The service answers the numbers (POST /v1/explain/*, format=json); the page draws them.

import { busy, decimal, imageForm, request, showError } from "./api.js";

const $ = (id) => document.getElementById(id);
// The service's heat-map ramp (service/pictures.py): dark purple, red, orange, pale yellow.
const RAMP = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];
const OPACITY = 0.6;

/** [r, g, b] of the ramp at t in [0, 1]. */
function colour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2);
  const f = x - i;
  return RAMP[i].map((c, k) => c + (RAMP[i + 1][k] - c) * f);
}

/** A rows x cols map (values in [0, 1]) as an RGBA canvas: hot is opaque, cold transparent. */
function heatCanvas(values, rows, cols) {
  const canvas = document.createElement("canvas");
  Object.assign(canvas, { width: cols, height: rows });
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(cols, rows);
  values.forEach((value, index) => {
    pixels.data.set([...colour(value), Math.round(255 * OPACITY * Math.min(Math.max(value, 0), 1))], index * 4);
  });
  context.putImageData(pixels, 0, 0);
  return canvas;
}

/** The crop with a heat map stretched over it (bilinear, as the service's PNG). */
function overlay(target, crop, heat) {
  const context = target.getContext("2d");
  context.drawImage(crop, 0, 0, target.width, target.height);
  context.imageSmoothingEnabled = true;
  context.drawImage(heat, 0, 0, target.width, target.height);
}

/** Per pixel of the crop, the mean drop of the windows covering it (service/numerics/occlusion.py). */
function occlusionPixels(body, side) {
  const total = new Float64Array(side * side);
  const count = new Float64Array(side * side);
  body.starts.forEach((top, row) => body.starts.forEach((left, col) => {
    const drop = body.heatmap[row][col];
    for (let y = top; y < top + body.patch; y += 1) {
      for (let x = left; x < left + body.patch; x += 1) {
        total[y * side + x] += drop;
        count[y * side + x] += 1;
      }
    }
  }));
  const mean = total.map((sum, i) => sum / count[i]);
  const peak = Math.max(...mean, 1e-12);
  return mean.map((value) => Math.max(value, 0) / peak);
}

/** The explain panel for `model` (GET /v1/model). */
export class ExplainView {
  constructor(model) {
    this.model = model;
    this.image = null;
    this.crop = null;
    this.token = 0;
    const classes = $("explain-class");
    model.labels.forEach((label, index) => classes.add(new Option(`${index}: ${label}`, String(index))));
    const layers = model.explain?.layers ?? [];
    for (const layer of layers) $("gradcam-layer").add(new Option(layer, layer, layer === "conv5", layer === "conv5"));
    this.gradcamOffered = layers.length > 0;
    $("explain-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
  }

  setImage(image, crop) {
    this.image = image;
    this.crop = crop;
    for (const id of ["occlusion-view", "gradcam-view"]) overlay($(id), crop, document.createElement("canvas"));
    $("explain-status").textContent = "Choose a class (or keep the prediction) and press Explain.";
  }

  async run() {
    if (!this.image) {
      showError($("explain-error"), "Choose an image above first.");
      return;
    }
    const token = ++this.token;
    showError($("explain-error"), null);
    const target = $("explain-class").value || null;
    const ask = (path, fields) => request(path, { form: imageForm(this.image, { class: target, ...fields }) });
    $("explain-status").textContent = "Explaining… (occlusion runs the model once per window)";
    const started = performance.now();
    try {
      const [occlusion, gradcam] = await busy($("explain-run"), () => Promise.all([
        ask("/v1/explain/occlusion", { patch: $("occlusion-patch").value, stride: $("occlusion-stride").value }),
        this.gradcamOffered
          ? ask("/v1/explain/gradcam", { layer: $("gradcam-layer").value, method: $("gradcam-method").value })
          : null,
      ]));
      if (token !== this.token) return;
      this.drawOcclusion(occlusion);
      if (gradcam) this.drawGradcam(gradcam);
      else $("gradcam-caption").textContent = "These artifacts have no gradient graph: re-export the model for Grad-CAM.";
      const label = occlusion.class;
      $("explain-status").textContent = `Explaining “${label.label}” (class ${label.index}, ` +
        `${(label.probability * 100).toFixed(1)} % on the whole crop), in ${Math.round(performance.now() - started)} ms.`;
    } catch (error) {
      if (token === this.token) showError($("explain-error"), error);
    }
  }

  drawOcclusion(body) {
    const side = this.model.input.shape[2];
    overlay($("occlusion-view"), this.crop, heatCanvas(occlusionPixels(body, side), side, side));
    const drops = body.heatmap.flat();
    $("occlusion-caption").textContent = `Occlusion: a ${body.patch} px square every ${body.stride} px, ` +
      `${body.forward_passes} forward passes; covering the hottest window drops the probability by ` +
      `${decimal(Math.max(...drops) * 100)} points.`;
  }

  drawGradcam(body) {
    const rows = body.heatmap.length;
    const cols = body.heatmap[0].length;
    overlay($("gradcam-view"), this.crop, heatCanvas(body.heatmap.flat(), rows, cols));
    $("gradcam-caption").textContent = `${body.method === "gradcam" ? "Grad-CAM" : "Grad-CAM++"} at ` +
      `${body.layer} (${rows} × ${cols} units, each seeing ${body.receptive_field} px, ` +
      `${body.jump} px apart), stretched over the crop.`;
  }
}
