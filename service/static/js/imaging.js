// Pictures in the page: reading an image, the network's view of it, feature maps in colour.

/** Decode a Blob to {blob, name, bitmap, width, height}; the message says what to do if it fails. */
export async function loadImage(blob, name) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob); // applies the EXIF orientation, as the service does
  } catch {
    throw new Error(`${name} is not an image this browser can read; try a JPEG or PNG file.`);
  }
  return { blob, name, bitmap, width: bitmap.width, height: bitmap.height };
}

/** At most `side` pixels on the longer side, re-encoded losslessly as PNG when it had to shrink. */
export async function shrink(image, side) {
  const scale = side / Math.max(image.width, image.height);
  if (scale >= 1) return image;
  const width = Math.max(1, Math.round(image.width * scale));
  const height = Math.max(1, Math.round(image.height * scale));
  const canvas = document.createElement("canvas");
  Object.assign(canvas, { width, height });
  const context = canvas.getContext("2d");
  context.imageSmoothingQuality = "high";
  context.drawImage(image.bitmap, 0, 0, width, height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  return loadImage(blob, image.name.replace(/\.\w+$/, "") + `-${width}x${height}.png`);
}

/**
 * Where the centre crop lies in the original image, following the manifest's preprocess block:
 * the shorter side resized to `resize`, then a centred `crop` x `crop` square (integer offsets).
 */
export function cropBox(width, height, preprocess) {
  const { resize, crop } = preprocess;
  const scale = resize / Math.min(width, height);
  const resizedW = Math.max(crop, Math.round(width * scale));
  const resizedH = Math.max(crop, Math.round(height * scale));
  const left = Math.floor((resizedW - crop) / 2);
  const top = Math.floor((resizedH - crop) / 2);
  const toW = width / resizedW;
  const toH = height / resizedH;
  return { x: left * toW, y: top * toH, width: crop * toW, height: crop * toH };
}

/** The crop x crop RGB picture the network is given (before the mean/std normalisation). */
export function networkView(image, preprocess, canvas = document.createElement("canvas")) {
  const box = cropBox(image.width, image.height, preprocess);
  canvas.width = canvas.height = preprocess.crop;
  const context = canvas.getContext("2d");
  context.imageSmoothingQuality = "high";
  context.drawImage(image.bitmap, box.x, box.y, box.width, box.height, 0, 0, canvas.width, canvas.height);
  return canvas;
}

/** The whole image, scaled to fit `canvas` (at most `side` px), the area outside the crop dimmed. */
export function drawWithCrop(canvas, image, preprocess, side = 320) {
  const scale = Math.min(side / image.width, side / image.height);
  canvas.width = Math.round(image.width * scale);
  canvas.height = Math.round(image.height * scale);
  const context = canvas.getContext("2d");
  context.drawImage(image.bitmap, 0, 0, canvas.width, canvas.height);
  const box = cropBox(image.width, image.height, preprocess);
  const [x, y, w, h] = [box.x * scale, box.y * scale, box.width * scale, box.height * scale];
  context.fillStyle = "rgba(0, 0, 0, 0.55)";
  context.beginPath();
  context.rect(0, 0, canvas.width, canvas.height);
  context.rect(x, y, w, h);
  context.fill("evenodd");
  context.strokeStyle = "#ffd43b";
  context.lineWidth = 2;
  context.strokeRect(x + 1, y + 1, w - 2, h - 2);
}

// Viridis, sampled at five points and interpolated: perceptually even and readable when grey.
const ANCHORS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const LUT = new Uint8ClampedArray(256 * 3);
for (let i = 0; i < 256; i += 1) {
  const t = (i / 255) * (ANCHORS.length - 1);
  const k = Math.min(Math.floor(t), ANCHORS.length - 2);
  for (let c = 0; c < 3; c += 1) {
    LUT[i * 3 + c] = ANCHORS[k][c] + (ANCHORS[k + 1][c] - ANCHORS[k][c]) * (t - k);
  }
}

/** min and max of values[offset .. offset+count). */
export function range(values, offset, count) {
  let low = Infinity;
  let high = -Infinity;
  for (let i = offset; i < offset + count; i += 1) {
    const v = values[i];
    if (v < low) low = v;
    if (v > high) high = v;
  }
  return [low, high];
}

/**
 * A rows x cols map starting at values[offset], drawn 1 px per unit on `canvas`, scaled to its
 * own min..max like the service's PNG grids (a constant map, e.g. a dead channel, stays dark).
 */
export function drawMap(canvas, values, offset, rows, cols) {
  const [low, high] = range(values, offset, rows * cols);
  const span = high > low ? 255 / (high - low) : 0;
  canvas.width = cols;
  canvas.height = rows;
  const context = canvas.getContext("2d");
  const picture = context.createImageData(cols, rows);
  for (let i = 0; i < rows * cols; i += 1) {
    const level = Math.round((values[offset + i] - low) * span) * 3;
    picture.data.set(LUT.subarray(level, level + 3), i * 4);
    picture.data[i * 4 + 3] = 255;
  }
  context.putImageData(picture, 0, 0);
  return canvas;
}

/** Copy `source` onto `target` enlarged `zoom` times with hard pixel edges. */
export function enlarge(target, source, zoom) {
  target.width = source.width * zoom;
  target.height = source.height * zoom;
  const context = target.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(source, 0, 0, target.width, target.height);
  return context;
}
