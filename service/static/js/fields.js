// Receptive fields from the layer table: which input pixels one unit of a layer can see.

/**
 * For each spatial layer, {size, jump, start}: unit i's window covers input pixels
 * start + i*jump .. start + i*jump + size - 1 (per axis). `start` is minus the padding
 * accumulated along the way, each layer's padding counted in the jump of its input.
 * Local response normalisation mixes channels, not positions, so it changes nothing;
 * fully connected layers see the whole input and map to null.
 */
export function receptiveFields(layers) {
  const fields = new Map();
  let size = 1;
  let jump = 1;
  let start = 0;
  for (const layer of layers) {
    if (layer.type === "fc") {
      fields.set(layer.name, null);
      continue;
    }
    if (layer.type !== "lrn") {
      start -= layer.padding * jump;
      size += (layer.kernel - 1) * jump;
      jump *= layer.stride;
    }
    if (size !== layer.receptive_field || jump !== layer.jump) {
      // The manifest is the source of truth; a mismatch means a layer kind this page misreads.
      console.warn(`receptive field of ${layer.name}: computed ${size}/${jump}, manifest ` +
        `${layer.receptive_field}/${layer.jump}`);
    }
    fields.set(layer.name, { size: layer.receptive_field, jump: layer.jump, start });
  }
  return fields;
}

/** The input window of unit (row, col): top-left corner and side, possibly past the edges. */
export function unitWindow(field, row, col) {
  return { top: field.start + row * field.jump, left: field.start + col * field.jump, size: field.size };
}

/** The part of a window inside a side x side input (null if none of it is). */
export function clip(window, side) {
  const top = Math.max(0, window.top);
  const left = Math.max(0, window.left);
  const bottom = Math.min(side, window.top + window.size);
  const right = Math.min(side, window.left + window.size);
  return bottom > top && right > left ? { top, left, bottom, right } : null;
}
