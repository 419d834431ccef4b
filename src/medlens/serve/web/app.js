"use strict";
// The medlens web page: list the models, send one image, show what the service answers.
// No framework and no build step; everything the page loads comes from the service itself.

const state = { token: "", models: [], base: null, mask: null, mapUrls: [] };
const $ = (id) => document.getElementById(id);
const PALETTE = [[0, 255, 0], [255, 0, 255], [0, 120, 255], [255, 200, 0], [200, 0, 255], [0, 220, 220]];
// one colour per detection class (by its index in the model's class_names)
const BOX_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];
const SVG = "http://www.w3.org/2000/svg";

function authHeaders() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

async function errorText(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)}`;
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

function showError(text) {
  $("error").textContent = text || "";
  $("error").hidden = !text;
}

function currentModel() {
  return state.models.find((m) => m.name === $("model").value);
}

function describeModel() {
  const m = currentModel();
  $("model-info").textContent = m ? `${m.task}, ${m.model}, classes: ${m.class_names.join(", ")}` : "";
  const methods = (m && m.uncertainty) || [];
  $("uncertainty-controls").hidden = methods.length === 0;
  for (const option of $("uncertainty").options) {
    option.disabled = option.value !== "" && !methods.includes(option.value);
  }
  if ($("uncertainty").selectedOptions[0]?.disabled) $("uncertainty").value = "";
}

function describeTrust(result) {
  const refer = $("refer");
  if (result.refer) {
    refer.textContent = result.refer_reason === "out_of_distribution"
      ? "Refer to a human reader: this image is unlike the images the model was trained on (out of distribution)."
      : "Refer to a human reader: the model is not sure of this case (it lies in the refer band).";
  }
  refer.hidden = !result.refer;
  const notes = [];
  if (result.calibration && result.calibration !== "none") notes.push(`probabilities calibrated (${result.calibration})`);
  const band = result.refer_band || {};
  if (band.low !== null && band.low !== undefined && band.high > band.low) {
    notes.push(`refer band ${band.low.toFixed(3)}–${Math.min(band.high, 1).toFixed(3)}`);
  } else if (Array.isArray(band.class_min_confidence) && result.predicted_index !== undefined) {
    const minimum = band.class_min_confidence[result.predicted_index];
    if (minimum > 0) notes.push(`refer when p(${result.predicted_class}) is below ${Math.min(minimum, 1).toFixed(3)}`);
  }
  if (result.ood && result.ood.members_flagging !== undefined) {
    const n = result.ood.members_flagging;
    notes.push(`${n} ensemble member${n === 1 ? "" : "s"} flag${n === 1 ? "s" : ""} this image out of distribution`);
  } else if (result.ood) {
    notes.push(`out-of-distribution score ${result.ood.score.toFixed(1)} (flagged above ${result.ood.threshold.toFixed(1)})`);
  }
  if (result.uncertainty) {
    const u = result.uncertainty;
    notes.push(`uncertainty (${u.method}, ${u.samples} samples): entropy ${u.entropy.toFixed(3)} nats, mutual information ${u.mutual_information.toFixed(3)} nats`);
  }
  $("trust").textContent = notes.join("; ");
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: authHeaders() });
  if (response.status === 401) {
    $("auth").hidden = false;
    showError(state.token ? "The access token was not accepted." : "This service needs an access token.");
    return;
  }
  if (!response.ok) {
    showError(await errorText(response));
    return;
  }
  showError("");
  state.models = (await response.json()).models;
  const select = $("model");
  select.replaceChildren();
  for (const m of state.models) {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = `${m.name} (${m.task})`;
    select.append(option);
  }
  if (state.models.length === 0) showError("This token may use no model.");
  describeModel();
}

async function post(path, file, headers = {}) {
  const form = new FormData();
  form.append("file", file);
  return fetch(path, { method: "POST", headers: { ...authHeaders(), ...headers }, body: form });
}

function base64Blob(text, type) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
}

async function analyse(file) {
  const model = currentModel();
  if (!model || !file) return;
  showError("");
  $("classification").hidden = true;
  $("segmentation").hidden = true;
  $("detection").hidden = true;
  $("status").textContent = `Analysing with ${model.name}…`;
  try {
    if (model.task === "classification") await classify(model, file);
    else if (model.route === "/v1/detect") await detect(model, file);
    else await segment(model, file);
  } catch (err) {
    showError(String(err));
  } finally {
    $("status").textContent = "";
  }
}

async function classify(model, file) {
  const method = $("uncertainty").value;
  const extra = method ? `&uncertainty=${encodeURIComponent(method)}` : "";
  const response = await post(`/v1/predict?model=${encodeURIComponent(model.name)}${extra}`, file);
  if (!response.ok) {
    showError(await errorText(response));
    return;
  }
  const result = await response.json();
  showDecision(result);
  describeTrust(result);
  $("threshold").textContent = result.threshold === null
    ? "(the most probable class)"
    : `(${result.class_names[1]} when its probability ≥ ${result.threshold.toFixed(3)})`;
  const rows = result.class_names.map((name, k) => {
    const row = document.createElement("tr");
    const p = result.probabilities[k];
    const bar = document.createElement("meter");
    bar.min = 0; bar.max = 1; bar.value = p;
    for (const content of [name, p.toFixed(3), bar]) {
      const cell = document.createElement("td");
      cell.append(content);
      row.append(cell);
    }
    return row;
  });
  $("probabilities").querySelector("tbody").replaceChildren(...rows);
  $("heatmap-figure").hidden = !result.heatmap_png_base64;
  $("heatmap-omitted").textContent = result.heatmap_omitted || "";
  $("heatmap-omitted").hidden = !result.heatmap_omitted;
  if (result.heatmap_png_base64) {
    await new Promise((resolve) => {
      $("heatmap").onload = resolve;
      $("heatmap").onerror = resolve;
      $("heatmap").src = "data:image/png;base64," + result.heatmap_png_base64;
    });
  }
  $("classification").hidden = false;
}

// "refer" for a case a human should decide, with the model's own class beside it in grey
// (its leaning, not a decision); the class itself otherwise.
function showDecision(result) {
  const decision = $("decision");
  decision.textContent = result.decision;
  decision.dataset.predictedClass = result.predicted_class;
  const leaning = $("leaning");
  if (result.refer) {
    const p = result.probabilities[result.predicted_index];
    leaning.textContent = `model leans: ${result.predicted_class}, p = ${p.toFixed(2)}`;
  }
  leaning.hidden = !result.refer;
}

function describeMaskUncertainty(u) {
  const text = $("mask-uncertainty");
  text.hidden = !u;
  text.textContent = u
    ? `Uncertainty (${u.method}): ${u.uncertainty.toFixed(3)} (1 − expected Dice ${u.expected_dice.toFixed(3)}); ` +
      `mean entropy ${u.mean_entropy.toFixed(3)} nats, mean mutual information ${u.mean_mutual_information.toFixed(3)} nats`
    : "";
}

const MAP_TITLES = { entropy: "entropy map", mutual_information: "mutual information map" };

// The per-voxel uncertainty maps of a mask (the JSON's uncertainty_maps, null when none was
// asked for), each offered for download. A PNG map (16-bit grey, 65535 = max_nats) is shown
// as it is: a browser reduces 16-bit grey to 8 bits linearly (Chromium keeps the high byte),
// so black is 0 nats and white max_nats = log K; no second rendering is needed. A NIfTI map
// (a volume's) is float32 nats, for a viewer: download only.
async function showUncertaintyMaps(maps, method) {
  for (const url of state.mapUrls) URL.revokeObjectURL(url);
  state.mapUrls = [];
  const downloads = $("map-downloads");
  downloads.replaceChildren();
  downloads.hidden = !maps;
  $("entropy-figure").hidden = true;
  if (!maps) return;
  const entropy = maps.entropy;
  const asPng = entropy && entropy.media_type === "image/png";
  downloads.append(asPng
    ? `Download the uncertainty maps (16-bit PNG, 0 = 0 nats, 65535 = ${entropy.max_nats.toFixed(3)} nats): `
    : "The uncertainty maps come as NIfTI files (float32, in nats, on the image's grid) to open in a viewer: ");
  for (const [name, map] of Object.entries(maps)) {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(base64Blob(map.base64, map.media_type));
    state.mapUrls.push(link.href);
    link.download = map.filename;
    link.textContent = `${MAP_TITLES[name] || name} (${map.filename})`;
    downloads.append(link);
  }
  if (!asPng) return;
  const img = $("entropy-map");
  const drawn = await new Promise((resolve) => {
    img.onload = () => resolve(true);
    img.onerror = () => resolve(false);
    img.src = "data:image/png;base64," + entropy.base64;
  });
  if (!drawn) {
    downloads.append(" (this browser cannot draw the entropy map; download it instead)");
    return;
  }
  const k = Math.round(Math.exp(entropy.max_nats));
  $("entropy-caption").textContent =
    `Predictive entropy of each pixel (${method}): black = 0 nats (certain), ` +
    `white = ${entropy.max_nats.toFixed(3)} nats = log ${k} (${k === 2 ? "both" : `all ${k}`} classes equally likely).`;
  $("entropy-figure").hidden = false;
}

async function segment(model, file) {
  const flat = model.spatial_dims === 2;
  const method = $("uncertainty").value;
  const extra = method ? `&uncertainty=${encodeURIComponent(method)}` : "";
  const query = `model=${encodeURIComponent(model.name)}&format=${flat ? "png" : "auto"}${extra}`;
  // JSON: the voxel counts come in the body (any class name), the mask file as base64
  const response = await post(`/v1/segment?${query}`, file, { Accept: "application/json" });
  if (!response.ok) {
    showError(await errorText(response));
    return;
  }
  const result = await response.json();
  const maskBlob = base64Blob(result.mask_base64, result.media_type);
  const link = $("download");
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(maskBlob);
  link.download = result.filename || "mask";
  const counts = Object.entries(result.class_voxels || {}).map(([name, n]) => `${name}=${n}`);
  $("voxels").textContent = counts.length ? `Pixels (voxels) per class: ${counts.join(", ")}` : "";
  describeMaskUncertainty(result.uncertainty);
  await showUncertaintyMaps(result.uncertainty_maps, result.uncertainty && result.uncertainty.method);
  $("overlay-controls").hidden = !flat;
  $("overlay").hidden = !flat;
  if (flat) {
    const preview = await post("/v1/preview", file);
    if (!preview.ok) {
      showError(await errorText(preview));
      return;
    }
    state.base = await createImageBitmap(await preview.blob());
    state.mask = await maskPixels(maskBlob);
    drawOverlay();
  }
  $("segmentation").hidden = false;
}

function boxColour(classIndex) {
  return BOX_COLOURS[classIndex % BOX_COLOURS.length];
}

function hexRgb(colour) {
  return [1, 3, 5].map((k) => parseInt(colour.slice(k, k + 2), 16));
}

// pycocotools' compressed RLE string (rleFrString) -> the run lengths, zeros first. Each count
// is 6-bit characters (value + 48), 5 bits of payload each, least significant first, 0x20 set
// on every character but the last, whose 0x10 is the sign; from the fourth count on, each is
// the difference to the count two places before. Plain arithmetic, not bit shifts: a count
// may be wider than JavaScript's 32-bit shifts.
function rleCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      const c = text.charCodeAt(p) - 48;
      if (!(c >= 0 && c < 64)) throw new Error("malformed RLE mask");
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p += 1;
      k += 1;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// Paint the pixels of a COCO RLE mask ({size: [height, width], counts}) into `layer` (an
// ImageData of the same size) in `rgba`. The runs go down the columns (column-major).
function paintMask(layer, rle, rgba) {
  const [height, width] = rle.size;
  if (height !== layer.height || width !== layer.width) return;
  const counts = typeof rle.counts === "string" ? rleCounts(rle.counts) : rle.counts;
  let start = 0;
  counts.forEach((run, r) => {
    if (r % 2 === 1) {
      for (let i = start; i < start + run && i < height * width; i++) {
        const y = i % height;
        const x = (i - y) / height;
        layer.data.set(rgba, (y * width + x) * 4);
      }
    }
    start += run;
  });
}

// The instance masks of the detections that carry one, each in its box's colour, as a PNG
// data URL of the image's own size (null when none has a mask); drawn translucent (style.css).
function maskLayer(detections, width, height) {
  const masked = detections.filter((found) => found.mask);
  if (masked.length === 0) return null;
  const layer = new ImageData(width, height);
  for (const found of masked) paintMask(layer, found.mask, [...hexRgb(boxColour(found.class_index)), 255]);
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(layer, 0, 0);
  return canvas.toDataURL("image/png");
}

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

async function detect(model, file) {
  // the findings at each class's threshold (the run's operating points)
  const response = await post(`/v1/detect?model=${encodeURIComponent(model.name)}`, file);
  if (!response.ok) {
    showError(await errorText(response));
    return;
  }
  const result = await response.json();
  const preview = await post("/v1/preview", file);
  if (!preview.ok) {
    showError(await errorText(preview));
    return;
  }
  const { width, height } = result.image_size;
  const svg = $("boxes");
  const old = svg.querySelector("image");
  if (old && old.getAttribute("href").startsWith("blob:")) URL.revokeObjectURL(old.getAttribute("href"));
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.dataset.width = width;
  svg.dataset.height = height;
  const href = URL.createObjectURL(await preview.blob());
  svg.append(svgElement("image", { href, x: 0, y: 0, width, height, preserveAspectRatio: "none" }));
  // instance masks (Mask R-CNN): one translucent layer over the image, under every box
  const masks = maskLayer(result.detections, width, height);
  if (masks) {
    svg.append(svgElement("image", { class: "masks", href: masks, x: 0, y: 0, width, height, preserveAspectRatio: "none" }));
  }
  const fontSize = Math.max(6, Math.round(Math.max(width, height) / 50));
  for (const found of result.detections) {
    const colour = boxColour(found.class_index);
    const group = svgElement("g", { class: "detection", "data-class": found.class });
    if (found.mask) group.dataset.maskArea = found.mask_area_px;
    const rect = svgElement("rect", {
      class: "box",
      x: found.x1,
      y: found.y1,
      width: found.x2 - found.x1,
      height: found.y2 - found.y1,
      stroke: colour,
    });
    const title = svgElement("title", {});
    const area = found.mask ? `, mask ${found.mask_area_px} px` : "";
    title.textContent = `${found.class} ${found.score.toFixed(2)}${area}`;
    rect.append(title);
    const label = svgElement("text", {
      x: found.x1 + 1,
      y: Math.max(found.y1 - 2, fontSize),
      fill: colour,
      "font-size": fontSize,
      "stroke-width": Math.max(1, fontSize / 4),
    });
    label.textContent = `${found.class} ${found.score.toFixed(2)}`;
    group.append(rect, label);
    svg.append(group);
  }
  const rows = result.class_names.map((name, k) => {
    const row = document.createElement("tr");
    row.dataset.class = name;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.backgroundColor = boxColour(k);
    for (const content of [swatch, name, String(result.counts[name] ?? 0)]) {
      const cell = document.createElement("td");
      cell.append(content);
      row.append(cell);
    }
    return row;
  });
  $("counts").querySelector("tbody").replaceChildren(...rows);
  const total = result.detections.length;
  $("detection-summary").textContent =
    `${total} object${total === 1 ? "" : "s"} found (each class at the score threshold the run chose on validation).`;
  $("detection").hidden = false;
}

async function maskPixels(blob) {
  const bitmap = await createImageBitmap(blob);
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  return ctx.getImageData(0, 0, bitmap.width, bitmap.height);
}

function drawOverlay() {
  if (!state.base || !state.mask) return;
  const canvas = $("overlay");
  canvas.width = state.base.width;
  canvas.height = state.base.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(state.base, 0, 0);
  const alpha = Math.round((Number($("opacity").value) / 100) * 255);
  const { data, width, height } = state.mask;
  const layer = new ImageData(width, height);
  for (let i = 0; i < data.length; i += 4) {
    const label = data[i];
    if (label === 0) continue;
    const colour = PALETTE[(label === 255 ? 0 : label - 1) % PALETTE.length];
    layer.data.set([...colour, alpha], i);
  }
  const top = new OffscreenCanvas(width, height);
  top.getContext("2d").putImageData(layer, 0, 0);
  ctx.drawImage(top, 0, 0, canvas.width, canvas.height);
}

function init() {
  $("connect").addEventListener("click", () => {
    state.token = $("token").value.trim();
    loadModels();
  });
  $("token").addEventListener("keydown", (event) => {
    if (event.key === "Enter") $("connect").click();
  });
  $("model").addEventListener("change", describeModel);
  $("file").addEventListener("change", () => analyse($("file").files[0]));
  $("opacity").addEventListener("input", drawOverlay);
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) analyse(event.dataTransfer.files[0]);
  });
  loadModels();
}

init();
