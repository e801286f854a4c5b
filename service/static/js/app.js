// The page's start: read the model, wire the image chooser and the tabs, build the four views.

import { apiKey, request, showError, thousands } from "./api.js";
import { loadImage } from "./imaging.js";
import { Predictor } from "./predict.js";
import { Explorer } from "./explorer.js";
import { Playground } from "./playground.js";
import { ExplainView } from "./explain.js";

const $ = (id) => document.getElementById(id);

/** Tabs per the WAI-ARIA pattern: click or arrow keys; the URL's #hash remembers the tab. */
function setUpTabs(onShow) {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const activate = (tab, focus = false) => {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      $(other.getAttribute("aria-controls")).hidden = !selected;
    }
    if (focus) tab.focus();
    history.replaceState(null, "", `#${tab.dataset.name}`);
    onShow(tab.dataset.name);
  };
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => activate(tab));
    tab.addEventListener("keydown", (event) => {
      const next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      activate(tabs[(next + tabs.length) % tabs.length], true);
    });
  });
  activate(tabs.find((tab) => `#${tab.dataset.name}` === location.hash) ?? tabs[0]);
}

/** Files from the chooser, drag and drop, or the clipboard, and the sample photos. */
function setUpSources(samples, use) {
  const fromFiles = (files) => {
    const file = [...(files ?? [])].find((f) => f.type.startsWith("image/")) ?? files?.[0];
    if (file) use(() => loadImage(file, file.name));
  };
  $("file").addEventListener("change", (event) => fromFiles(event.target.files));
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    fromFiles(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => fromFiles(event.clipboardData?.files));
  const list = $("samples");
  for (const sample of samples) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sample";
    button.setAttribute("aria-label", `Use the sample photo ${sample.name}`);
    const picture = document.createElement("img");
    Object.assign(picture, { src: sample.url, alt: "", width: 72, height: 48 });
    const name = document.createElement("span");
    name.textContent = sample.name;
    button.append(picture, name);
    button.addEventListener("click", () => use(async () => {
      const blob = await request(sample.url, { as: "blob" });
      return loadImage(blob, sample.url.split("/").pop());
    }));
    list.append(button);
  }
}

/** The server wants an API key: ask for it, keep it for this tab, start again. */
function askForKey() {
  const form = $("key-form");
  form.hidden = false;
  $("api-key").focus();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey.set($("api-key").value.trim());
    location.reload();
  });
}

async function start() {
  let model;
  try {
    model = await request("/v1/model");
  } catch (error) {
    $("model-info").textContent = "";
    showError($("page-error"), `The page cannot start: ${error.message}`);
    if (error.status === 401) askForKey();
    return;
  }
  $("model-info").textContent = `${model.name} ${model.version} (${model.variant}): ` +
    `${model.num_classes} classes, ${thousands(model.parameters)} parameters, on ` +
    `${model.provider} (${model.precision})`;
  const [presets, samples] = await Promise.all([
    request("/v1/presets").catch((error) => {
      showError($("play-error"), `Preset kernels are unavailable: ${error.message}`);
      return { edge: [[1, -1]] };
    }),
    request("/v1/samples").then((body) => body.samples).catch(() => []),
  ]);
  const predictor = new Predictor(model);
  const explorer = new Explorer(model);
  const playground = new Playground(model, presets);
  const explainView = new ExplainView(model);
  let latest = 0;
  const use = async (load) => {
    const ticket = ++latest;
    showError($("source-error"), null);
    try {
      const image = await load();
      if (ticket !== latest) return;
      $("current").textContent = `Using ${image.name} (${image.width} × ${image.height} px).`;
      const crop = predictor.setImage(image);
      explorer.setImage(image, crop);
      playground.setImage(image);
      explainView.setImage(image, crop);
    } catch (error) {
      showError($("source-error"), error instanceof Error ? error.message : String(error));
    }
  };
  setUpSources(samples, use);
  setUpTabs((name) => explorer.setVisible(name === "explore"));
  document.body.classList.add("ready");
  if (samples.length) $("samples").querySelector("button").click();
}

start();
