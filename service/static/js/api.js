// Talking to the service: fetch wrappers that turn every failure into a sentence for people.

/** An error whose message is fit to show: the service's own words where it sent some. */
export class ApiError extends Error {
  constructor(message, status = 0, code = "") {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** The message inside an error response: `{"error": {"message"}}` on /v1, `{"error": "..."}` on /v2. */
async function errorMessage(response) {
  const fallback = `The service answered ${response.status} ${response.statusText}.`;
  try {
    const body = await response.json();
    if (typeof body?.error === "string") return [body.error, ""];
    if (body?.error?.message) return [body.error.message, body.error.code ?? ""];
  } catch {
    // Not JSON (a proxy's HTML page, say): the status line is all there is.
  }
  return [fallback, ""];
}

const KEY_NAME = "alexnet-api-key";

/** The API key a person typed in, kept for this tab only (sessionStorage). */
export const apiKey = {
  get: () => sessionStorage.getItem(KEY_NAME),
  set: (key) => (key ? sessionStorage.setItem(KEY_NAME, key) : sessionStorage.removeItem(KEY_NAME)),
};

/** GET or POST `path`; `as` is "json", "blob" or "arrayBuffer". Throws ApiError. */
export async function request(path, { form = null, as = "json" } = {}) {
  const key = apiKey.get();
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  let response;
  try {
    response = await fetch(path, form ? { method: "POST", body: form, headers } : { headers });
  } catch (error) {
    throw new ApiError(`Cannot reach the service (${error.message}). Is it still running?`);
  }
  if (!response.ok) {
    const [message, code] = await errorMessage(response);
    throw new ApiError(message, response.status, code);
  }
  return response[as]();
}

/** A multipart form with the image file and the given fields (skipping null/undefined). */
export function imageForm(image, fields = {}) {
  const form = new FormData();
  form.append("image", image.blob, image.name);
  for (const [key, value] of Object.entries(fields)) {
    if (value !== null && value !== undefined) form.append(key, String(value));
  }
  return form;
}

const integers = new Intl.NumberFormat("en-US");
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

/** 1234567 -> "1,234,567". */
export const thousands = (n) => integers.format(n);

/** 105415200 -> "105.4M". */
export const short = (n) => compact.format(n);

/** A number for a statistics table: four significant digits, no exponent for everyday sizes. */
export function decimal(x) {
  if (x === 0 || !Number.isFinite(x)) return String(x);
  const size = Math.abs(x);
  if (size >= 1e5 || size < 1e-3) return x.toExponential(3);
  return x.toPrecision(4).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

/** [96, 55, 55] -> "96 × 55 × 55". */
export const shapeText = (shape) => shape.join(" × ");

/** Show `error` (an ApiError or anything thrown) in `box`, or clear the box when null. */
export function showError(box, error) {
  let text = "";
  if (typeof error === "string") text = error;
  else if (error instanceof ApiError) text = error.message;
  else if (error) text = `Something went wrong: ${error.message ?? error}`;
  box.textContent = text;
  box.hidden = !text;
}

/**
 * Mark `button` busy while `work` (a promise-returning function) runs. Not `disabled`: that
 * would throw the keyboard focus off the button the user just pressed.
 */
export async function busy(button, work) {
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.removeAttribute("aria-busy");
  }
}

/** Fill a <dl> with [term, value] pairs, each pair in its own <div> so it wraps as one. */
export function fillStats(list, pairs) {
  list.replaceChildren(...pairs.map(([term, value]) => {
    const group = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    group.append(dt, dd);
    return group;
  }));
}
