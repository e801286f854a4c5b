// Statistics of activations, computed from the raw arrays the page already holds (one POST
// /v1/activations per layer, format=npz). The same figures, by the same rules, as the API's
// format=json: population std, sparsity = fraction of exact zeros, and the most active
// channels by mean (ties: the lower channel first).

/** {mean, std, min, max, sparsity} of a list of numbers. */
export function describe(values) {
  let sum = 0;
  let zeros = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const value of values) {
    sum += value;
    if (value === 0) zeros += 1;
    if (value < min) min = value;
    if (value > max) max = value;
  }
  const mean = sum / values.length;
  let squares = 0;
  for (const value of values) squares += (value - mean) ** 2;
  return { mean, std: Math.sqrt(squares / values.length), min, max, sparsity: zeros / values.length };
}

/** {shape, mean, std, min, max, sparsity, top_channels} of an npz array {shape, data}. */
export function summarise(array, topK = 5) {
  const { shape, data } = array;
  const size = data.length / shape[0];
  const means = [];
  for (let c = 0; c < shape[0]; c += 1) {
    let sum = 0;
    for (let i = c * size; i < (c + 1) * size; i += 1) sum += data[i];
    means.push({ channel: c, mean: sum / size });
  }
  means.sort((a, b) => b.mean - a.mean || a.channel - b.channel);
  return { shape, ...describe(data), top_channels: means.slice(0, topK) };
}
