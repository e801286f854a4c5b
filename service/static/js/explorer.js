// The activation explorer: the layer sequence, one layer's feature maps, conv1's filters.

import { busy, decimal, fillStats, imageForm, request, shapeText, short, showError, thousands } from "./api.js";
import { drawMap, range } from "./imaging.js";
import { parseNpz } from "./npz.js";
import { receptiveFields } from "./fields.js";
import { summarise } from "./summary.js";
import { UnitView } from "./unitview.js";
import { ChannelGallery } from "./gallery.js";

const $ = (id) => document.getElementById(id);

const KINDS = {
  conv: (l) => `convolution ${l.kernel}×${l.kernel}, stride ${l.stride}` + (l.padding ? `, pad ${l.padding}` : ""),
  maxpool: (l) => `max pool ${l.kernel}×${l.kernel}, stride ${l.stride}`,
  lrn: () => "local response normalisation",
  fc: () => "fully connected",
};

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The explorer for `model` (GET /v1/model); call setImage() whenever the image changes. */
export class Explorer {
  constructor(model) {
    this.model = model;
    this.fields = receptiveFields(model.layers);
    this.image = null;
    this.crop = null;
    this.selected = null;
    this.cache = new Map();
    this.token = 0;
    this.unit = new UnitView();
    this.gallery = new ChannelGallery(model);
    this.rgbLayer = model.layers.find((l) => l.type === "conv" && l.in_channels / l.groups === 3)?.name;
    this.drawLayers();
  }

  drawLayers() {
    const list = $("layers");
    const input = element("li", "layer input");
    input.append(element("span", "layer-name", "input"),
      element("span", "layer-shape", shapeText(this.model.input.shape)),
      element("span", "layer-meta", "the centre crop, normalised"));
    list.replaceChildren(input);
    this.buttons = new Map();
    for (const layer of this.model.layers) {
      const button = element("button", `layer ${layer.type}`);
      button.type = "button";
      button.setAttribute("aria-pressed", "false");
      const field = this.fields.get(layer.name);
      button.append(element("span", "layer-name", layer.name),
        element("span", "layer-kind", KINDS[layer.type]?.(layer) ?? layer.type),
        element("span", "layer-shape", shapeText(layer.output_shape)),
        element("span", "layer-meta", `${short(layer.parameters)} params · ${short(layer.multiply_adds)} mult-adds`),
        element("span", "layer-rf", field ? `sees ${layer.receptive_field} px, jump ${layer.jump}` : "sees the whole image"));
      button.title = `${layer.name}: ${thousands(layer.parameters)} parameters, ` +
        `${thousands(layer.multiply_adds)} multiply-adds`;
      button.addEventListener("click", () => this.select(layer.name));
      const item = element("li");
      item.append(button);
      list.append(item);
      this.buttons.set(layer.name, button);
    }
    const params = this.model.layers.reduce((sum, l) => sum + l.parameters, 0);
    const macs = this.model.layers.reduce((sum, l) => sum + l.multiply_adds, 0);
    $("layer-totals").textContent = `${this.model.layers.length} layers, ${thousands(params)} ` +
      `parameters, ${thousands(macs)} multiply-adds per image. "Sees" is the receptive field: ` +
      `the side of the input square one unit depends on; "jump" is how far apart neighbouring units look.`;
  }

  /** A new image: forget old activations, redraw the chosen layer for it. */
  setImage(image, crop) {
    this.image = image;
    this.crop = crop;
    this.cache = new Map(); // a fresh map: answers still on their way for the old image go to the old one
    this.unit.close();
    if (this.selected) this.select(this.selected);
    else this.setVisible(this.visible);
  }

  /** The panel was shown or hidden; the first time it shows with an image, open the first layer. */
  setVisible(visible) {
    this.visible = visible;
    if (visible && this.image && !this.selected) this.select(this.model.layers[0].name);
  }

  async select(name) {
    this.selected = name;
    for (const [other, button] of this.buttons) button.setAttribute("aria-pressed", String(other === name));
    const layer = this.model.layers.find((l) => l.name === name);
    $("layer-view").hidden = false;
    $("layer-title").textContent = `${name}: ${KINDS[layer.type]?.(layer) ?? layer.type}`;
    this.showFilters(name === this.rgbLayer);
    if (!this.image) {
      showError($("explore-error"), "Choose an image above first.");
      return;
    }
    const token = ++this.token;
    showError($("explore-error"), null);
    $("grid-caption").textContent = `Running the network up to ${name}…`;
    try {
      const result = await busy(this.buttons.get(name), () => this.activations(name));
      if (token === this.token) this.drawLayer(layer, result);
    } catch (error) {
      if (token !== this.token) return;
      $("grid-caption").textContent = "";
      $("map-grid").replaceChildren();
      showError($("explore-error"), error);
    }
  }

  /**
   * One POST /v1/activations per layer and image (npz: the numbers); the statistics come from
   * them. The promise is cached, so a second click while the first answer is on its way waits
   * for that answer instead of running the model again.
   */
  activations(name) {
    const cache = this.cache;
    if (!cache.has(name)) {
      const answer = request("/v1/activations",
        { form: imageForm(this.image, { layers: name, format: "npz" }), as: "arrayBuffer" })
        .then(async (npz) => {
          const array = (await parseNpz(npz)).get(name);
          return { stats: summarise(array), array };
        });
      answer.catch(() => cache.delete(name)); // a failure is not kept: the next click retries
      cache.set(name, answer);
    }
    return cache.get(name);
  }

  drawLayer(layer, { stats, array }) {
    fillStats($("layer-stats"), [["shape", shapeText(stats.shape)], ["mean", decimal(stats.mean)],
      ["std", decimal(stats.std)], ["min", decimal(stats.min)], ["max", decimal(stats.max)],
      ["zeros", `${(stats.sparsity * 100).toFixed(1)} %`]]);
    const spatial = array.shape.length === 3;
    const top = $("top-channels");
    top.replaceChildren(element("span", "", spatial ? "Most active channels: " : "Most active units: "));
    for (const { channel, mean } of stats.top_channels) {
      const chip = element("button", "chip", `#${channel} (${decimal(mean)})`);
      chip.type = "button";
      chip.disabled = !spatial;
      chip.addEventListener("click", () => this.openChannel(layer, array, channel));
      top.append(chip);
    }
    if (spatial) this.drawGrid(layer, array, new Set(stats.top_channels.map((t) => t.channel)));
    else this.drawUnits(array);
  }

  drawGrid(layer, array, top) {
    const [channels, rows, cols] = array.shape;
    $("grid-caption").textContent = `${channels} feature maps, ${rows} × ${cols} each ` +
      "(each scaled to its own range; ★ = most active). Choose one to see it large.";
    const grid = $("map-grid");
    grid.className = "map-grid";
    const cells = document.createDocumentFragment();
    for (let c = 0; c < channels; c += 1) {
      const cell = element("button", top.has(c) ? "map top" : "map");
      cell.type = "button";
      cell.dataset.channel = String(c);
      cell.setAttribute("aria-pressed", "false");
      cell.setAttribute("aria-label", `${layer.name} channel ${c}`);
      cell.append(drawMap(element("canvas"), array.data, c * rows * cols, rows, cols),
        element("span", "map-label", top.has(c) ? `★${c}` : String(c)));
      cell.addEventListener("click", () => this.openChannel(layer, array, c));
      cells.append(cell);
    }
    grid.replaceChildren(cells);
  }

  drawUnits(array) {
    const count = array.data.length;
    const side = Math.ceil(Math.sqrt(count));
    const padded = new Float32Array(side * side).fill(range(array.data, 0, count)[0]);
    padded.set(array.data);
    $("grid-caption").textContent = `${count} units, one square each, row by row ` +
      "(a fully connected layer has no spatial maps: every unit sees the whole image).";
    const grid = $("map-grid");
    grid.className = "map-grid units";
    const canvas = drawMap(element("canvas"), padded, 0, side, side);
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `${count} unit activations`);
    grid.replaceChildren(canvas);
    this.unit.close();
  }

  openChannel(layer, array, channel) {
    for (const cell of $("map-grid").querySelectorAll(".map")) {
      cell.setAttribute("aria-pressed", String(cell.dataset.channel === String(channel)));
    }
    this.unit.open({ layer, channel, array, field: this.fields.get(layer.name), crop: this.crop });
    this.gallery.show(layer, channel);
  }

  /** The learned filters of the layer that sees the RGB image (GET /v1/layers/<name>/filters.png). */
  async showFilters(visible) {
    const figure = $("filters");
    figure.hidden = !visible;
    if (!visible || this.filtersLoaded) return;
    this.filtersLoaded = true;
    try {
      const blob = await request(`/v1/layers/${this.rgbLayer}/filters.png`, { as: "blob" });
      $("filters-img").src = URL.createObjectURL(blob);
    } catch (error) {
      this.filtersLoaded = false;
      showError($("explore-error"), error);
    }
  }
}
