// What a channel looks for: the image patches the export found that activate it most
// (GET /v1/channels/<layer>/<c>/top), beside the channel's filter for the first layer.

import { request } from "./api.js";

const $ = (id) => document.getElementById(id);

export class ChannelGallery {
  constructor(model) {
    this.layers = new Set(model.channel_patches?.layers ?? []);
    this.rgbLayer = model.layers.find((l) => l.type === "conv" && l.in_channels / l.groups === 3)?.name;
    this.token = 0;
    this.urls = [];
  }

  hide() {
    this.token += 1;
    $("channel-gallery").hidden = true;
  }

  /** Show `channel` of `layer`; quietly nothing where the export kept no patches for it. */
  async show(layer, channel) {
    const token = ++this.token;
    if (!this.layers.has(layer.name)) {
      $("channel-gallery").hidden = true;
      return;
    }
    const base = `/v1/channels/${layer.name}/${channel}/top`;
    const filter = layer.name === this.rgbLayer
      ? request(`/v1/layers/${layer.name}/filters.png?channel=${channel}`, { as: "blob" })
      : Promise.resolve(null);
    try {
      const top = await request(base);
      const [patches, tile] = await Promise.all([
        top.patches.length ? request(`${base}.png`, { as: "blob" }) : null, filter]);
      if (token !== this.token) return;
      for (const url of this.urls) URL.revokeObjectURL(url);
      this.urls = [];
      this.setImage($("channel-patches"), patches);
      this.setImage($("channel-filter"), tile);
      $("channel-gallery-caption").textContent = top.patches.length
        ? `The ${top.patches.length} images (of ${top.images} the export ran) on which ` +
          `${layer.name} channel ${channel} fires most, each cut to the ${top.receptive_field} px ` +
          `square its strongest unit sees${tile ? "; left, the channel's filter" : ""}.`
        : `${layer.name} channel ${channel} fired on none of the ${top.images} images the export ran.`;
      $("channel-gallery").hidden = false;
    } catch {
      if (token === this.token) $("channel-gallery").hidden = true; // an extra, never an error
    }
  }

  setImage(img, blob) {
    img.hidden = !blob;
    if (!blob) return;
    const url = URL.createObjectURL(blob);
    this.urls.push(url);
    img.src = url;
  }
}
