// The convolution playground: a kernel editor, convolution or cross-correlation, and pooling.

import { ApiError, busy, decimal, imageForm, request, shapeText, showError, thousands } from "./api.js";
import { shrink } from "./imaging.js";

const $ = (id) => document.getElementById(id);
const SHRINK_SIDE = 512;
const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;

/** A cell's text as a number ("1/9" too); anything else is sent as typed, for the service to judge. */
function cellValue(text) {
  const t = text.trim();
  const fraction = /^([-+]?[\d.]+)\s*\/\s*([\d.]+)$/.exec(t);
  if (fraction && NUMBER.test(fraction[1]) && NUMBER.test(fraction[2])) return Number(fraction[1]) / Number(fraction[2]);
  return NUMBER.test(t) ? Number(t) : t;
}

const cellText = (v) => String(Number(Number(v).toPrecision(7)));

/** The playground panel for `model` (its limits) and `presets` (GET /v1/presets). */
export class Playground {
  constructor(model, presets) {
    this.limits = model.limits;
    this.presets = presets;
    this.image = null;
    this.sent = null;
    this.urls = {};
    for (const id of ["kernel-rows", "kernel-cols"]) {
      $(id).max = String(this.limits.max_kernel_size);
      $(id).addEventListener("change", () => this.resize());
    }
    $("kernel-limit").textContent = `up to ${this.limits.max_kernel_size} × ${this.limits.max_kernel_size}`;
    $("pool-size").max = String(this.limits.max_pool_size);
    const select = $("kernel-preset");
    for (const name of Object.keys(presets)) select.add(new Option(name, name));
    select.addEventListener("change", () => select.value && this.setKernel(presets[select.value]));
    $("kernel-grid").addEventListener("input", () => { select.value = ""; });
    select.value = "edge" in presets ? "edge" : select.options[1]?.value ?? "";
    this.setKernel(presets[select.value] ?? [[1, -1]]);
    $("convolve-form").addEventListener("submit", (event) => { event.preventDefault(); this.convolve(); });
    $("pool-form").addEventListener("submit", (event) => { event.preventDefault(); this.pool(); });
  }

  setImage(image) {
    this.image = image;
    this.sent = null;
    // Results of the previous image would now mislead: clear them.
    for (const id of ["play-results", "efficiency", "conv-output-figure", "pool-output-figure"]) {
      $(id).hidden = true;
    }
  }

  /** Fill the editor with `kernel` (a 2-D list). */
  setKernel(kernel) {
    $("kernel-rows").value = String(kernel.length);
    $("kernel-cols").value = String(kernel[0].length);
    this.drawGrid(kernel.map((row) => row.map(cellText)));
  }

  /** Rows/cols changed: keep what was typed, fill new cells with 0. */
  resize() {
    const clamp = (id) => {
      const n = Math.round(Number($(id).value)) || 1;
      $(id).value = String(Math.min(Math.max(n, 1), this.limits.max_kernel_size));
      return Number($(id).value);
    };
    const [rows, cols] = [clamp("kernel-rows"), clamp("kernel-cols")];
    const old = this.texts();
    this.drawGrid(Array.from({ length: rows }, (_, r) =>
      Array.from({ length: cols }, (_, c) => old[r]?.[c] ?? "0")));
    $("kernel-preset").value = "";
  }

  drawGrid(texts) {
    const grid = $("kernel-grid");
    grid.style.gridTemplateColumns = `repeat(${texts[0].length}, minmax(3.2rem, 4.5rem))`;
    const cells = [];
    texts.forEach((row, r) => row.forEach((text, c) => {
      const input = document.createElement("input");
      Object.assign(input, { type: "text", inputMode: "decimal", value: text, spellcheck: false });
      input.dataset.row = String(r);
      input.setAttribute("aria-label", `kernel row ${r + 1}, column ${c + 1}`);
      cells.push(input);
    }));
    grid.replaceChildren(...cells);
  }

  texts() {
    const rows = [];
    for (const input of $("kernel-grid").querySelectorAll("input")) {
      const r = Number(input.dataset.row);
      (rows[r] ??= []).push(input.value);
    }
    return rows;
  }

  /** The image to send: the chosen one, shrunk when asked to and large. */
  async input() {
    if (!this.image) throw new ApiError("Choose an image above first.");
    const small = $("shrink").checked;
    if (!this.sent || this.sent.small !== small) {
      this.sent = { small, image: small ? await shrink(this.image, SHRINK_SIDE) : this.image };
    }
    return this.sent.image;
  }

  show(id, blob) {
    if (this.urls[id]) URL.revokeObjectURL(this.urls[id]);
    this.urls[id] = URL.createObjectURL(blob);
    $(id).src = this.urls[id];
  }

  /** POST `path` for json and png; draw the input and the result; returns the json. */
  async filter(path, fields, output, button) {
    showError($("play-error"), null);
    try {
      return await busy(button, async () => {
        const image = await this.input();
        const ask = (format, as) => request(path, { form: imageForm(image, { ...fields, format }), as });
        const [body, png] = await Promise.all([ask("json", "json"), ask("png", "blob")]);
        this.show("play-input", image.blob);
        $("play-input-shape").textContent = `${shapeText(body.input_shape)} (${image.name})`;
        this.show(output, png);
        $(`${output}-figure`).hidden = false;
        $(`${output}-shape`).textContent = shapeText(body.shape);
        const s = body.statistics;
        $(`${output}-stats`).textContent = `min ${decimal(s.min)}, max ${decimal(s.max)}, mean ` +
          `${decimal(s.mean)}; shown scaled from min (black) to max (white).`;
        $("play-results").hidden = false;
        return body;
      });
    } catch (error) {
      showError($("play-error"), error);
      return null;
    }
  }

  async convolve() {
    const checked = (name) => document.querySelector(`input[name="${name}"]:checked`).value;
    const kernel = this.texts().map((row) => row.map(cellValue));
    const body = await this.filter("/v1/convolve", {
      kernel: JSON.stringify(kernel), mode: checked("mode"), padding: $("padding").value,
      stride: $("stride").value, color: checked("color"),
    }, "conv-output", $("convolve-run"));
    if (body) this.efficiency(body);
  }

  async pool() {
    const checked = (name) => document.querySelector(`input[name="${name}"]:checked`).value;
    await this.filter("/v1/pool", {
      op: checked("op"), size: $("pool-size").value, stride: $("pool-stride").value || null,
      color: checked("color"),
    }, "pool-output", $("pool-run"));
  }

  efficiency({ efficiency: e, kernel, mode, padding, stride }) {
    $("conv-output-title").textContent = `${mode === "convolution" ? "Convolution" : "Cross-correlation"}` +
      ` with the ${kernel.length} × ${kernel[0].length} kernel (${padding}, stride ${stride})`;
    const rows = [["convolution (the kernel)", e.convolution], ["dense matrix", e.dense_matrix],
      ["sparse matrix", e.sparse_matrix]];
    const body = $("efficiency-rows");
    body.replaceChildren();
    for (const [name, figures] of rows) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = name;
      tr.append(th);
      for (const value of [figures.stored_floats, figures.float_ops]) {
        const td = document.createElement("td");
        td.textContent = thousands(value);
        tr.append(td);
      }
      body.append(tr);
    }
    const ratio = e.dense_matrix.stored_floats / e.convolution.stored_floats;
    $("efficiency-note").textContent = `The same linear map written as a dense matrix stores ` +
      `${thousands(Math.round(ratio))} times as many floats as the kernel: that is what sparse ` +
      "interactions and parameter sharing save.";
    $("efficiency").hidden = false;
  }
}
