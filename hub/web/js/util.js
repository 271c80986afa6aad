// Small helpers shared by the views.
export function items(data, ...keys) {
  if (Array.isArray(data)) return data;
  for (const k of keys) if (data && Array.isArray(data[k])) return data[k];
  return [];
}

// A websocket message carries one event; accept {event: {...}} or the event itself.
export function eventOf(msg) {
  if (!msg || typeof msg !== "object") return null;
  return msg.event && typeof msg.event === "object" ? msg.event : msg;
}

// A value with the unit its device states for the attribute (attribute_meta): "27 °C".
export function withUnit(device, attribute, value) {
  const unit = device?.attribute_meta?.[attribute]?.unit;
  return unit && typeof value === "number" ? `${fmt(value)} ${unit}` : fmt(value);
}

export function fmt(value) {
  if (value === true) return "on";
  if (value === false) return "off";
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(1);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
