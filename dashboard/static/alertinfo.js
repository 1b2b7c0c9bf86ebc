// How a model switch and an alert read in words: the same text on the overview's time axis, in the list
// under its charts and on the alerts page. Every field comes from the read API and ends up as text.

import { fmt } from "./app.js";

const SHARE = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 0 });
const POINTS = new Intl.NumberFormat(undefined, {
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
  signDisplay: "exceptZero",
});

export const ALERT_KINDS = ["switch_regression", "drift", "threshold"];
const KIND_LABEL = { switch_regression: "switch regression", drift: "drift", threshold: "threshold" };

export const kindLabel = (kind) => KIND_LABEL[kind] || String(kind);

/** "full, 100%", "partial, 30%" or "silent": how much of the agent's traffic moved. */
export function switchHow(s) {
  return s.kind === "silent" ? "silent" : `${s.kind}, ${SHARE.format(s.share)}`;
}

/** "support-bot: gpt-4o → glm-4.5 (full, 100%)" */
export function switchText(s) {
  return `${s.agent}: ${s.old_model} → ${s.new_model} (${switchHow(s)})`;
}

/** The models an alert is about: "old → new" for a switch, the one model for drift and thresholds. */
export function alertModels(a) {
  return a.old_model && a.old_model !== a.new_model ? [a.old_model, a.new_model] : [a.new_model];
}

/** "0.0% → 50.0%" (before → after); a threshold alert: "12.0% (above 5.0%)" (the rate, the threshold). */
export function valuesText(a) {
  if (a.kind === "threshold") return `${fmt.rate(a.after)} (above ${fmt.rate(a.before)})`;
  return `${fmt.rate(a.before)} → ${fmt.rate(a.after)}`;
}

/** "malformed_session_rate 0.0% → 50.0%" */
export const figuresText = (a) => `${a.metric} ${valuesText(a)}`;

const points = (v) => `${POINTS.format(v * 100)} pts`;

/** What backs the figures: the 95 % interval (of after - before; a threshold's: of the rate) and n. */
export function evidenceText(a) {
  const [low, high] = a.interval || [null, null];
  if (low === null || high === null) return "";
  if (a.kind === "threshold") {
    return `95 % interval ${fmt.rate(low)} to ${fmt.rate(high)}, n = ${fmt.count(a.n_after)}`;
  }
  return (
    `${points(a.after - a.before)} (95 % interval ${points(low)} to ${points(high)}), ` +
    `n = ${fmt.count(a.n_before)} → ${fmt.count(a.n_after)} sessions`
  );
}

/** "switch regression, open: canary-bot old-model → new-model, malformed_session_rate 0.0% → 50.0%" */
export function alertText(a) {
  return `${kindLabel(a.kind)}, ${a.state}: ${a.agent} ${alertModels(a).join(" → ")}, ${figuresText(a)}`;
}
