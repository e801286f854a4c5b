// The predict view: the image as the network sees it, and the top-k labels with probability bars.

import { busy, imageForm, request, showError } from "./api.js";
import { drawWithCrop, networkView } from "./imaging.js";

const $ = (id) => document.getElementById(id);

/** The predict panel for `model` (GET /v1/model). */
export class Predictor {
  constructor(model) {
    this.model = model;
    this.image = null;
    this.token = 0;
    const { resize, crop, interpolation } = model.preprocess;
    $("crop-caption").textContent = `What the network is given: the shorter side resized to ` +
      `${resize} px (${interpolation}), then the centre ${crop} × ${crop} square. ` +
      "It then subtracts the ImageNet mean and divides by the standard deviation, per channel.";
    const select = $("top-k");
    for (const k of [1, 3, 5, 10, 20]) {
      if (k > model.num_classes) break;
      select.add(new Option(String(k), String(k), k === 5, k === 5));
    }
    if (!select.options.length) select.add(new Option(String(model.num_classes)));
    $("predict-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
  }

  /** A new image: draw both views and classify it. Returns the crop canvas. */
  setImage(image) {
    this.image = image;
    drawWithCrop($("original"), image, this.model.preprocess);
    $("original-caption").textContent = `${image.name}: ${image.width} × ${image.height} px; ` +
      "the bright square is the part the network looks at.";
    const crop = networkView(image, this.model.preprocess, $("network-view"));
    this.run();
    return crop;
  }

  async run() {
    if (!this.image) {
      showError($("predict-error"), "Choose an image above first.");
      return;
    }
    const token = ++this.token;
    showError($("predict-error"), null);
    $("predict-status").textContent = "Classifying…";
    const started = performance.now();
    try {
      const body = await busy($("predict-run"), () => request("/v1/predict",
        { form: imageForm(this.image, { top_k: $("top-k").value }) }));
      if (token !== this.token) return;
      const elapsed = Math.round(performance.now() - started);
      this.draw(body.results[0].predictions);
      $("predict-status").textContent = `${body.model} answered in ${elapsed} ms ` +
        `(${this.model.provider}, ${this.model.precision}).`;
    } catch (error) {
      if (token !== this.token) return;
      $("predictions").replaceChildren();
      $("predict-status").textContent = "";
      showError($("predict-error"), error);
    }
  }

  draw(predictions) {
    const list = $("predictions");
    list.replaceChildren();
    for (const { label, index, probability } of predictions) {
      const item = document.createElement("li");
      item.className = "prediction";
      const name = document.createElement("span");
      name.className = "label";
      name.textContent = label;
      name.title = `class index ${index}`;
      const percent = document.createElement("span");
      percent.className = "percent";
      percent.textContent = `${(probability * 100).toFixed(1)} %`;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.style.width = `${Math.max(0.5, probability * 100)}%`;
      bar.append(fill);
      item.append(name, percent, bar);
      list.append(item);
    }
  }
}
