// On `segment-threshold-crossed`, email the data owners (config `group`,
// default `data-owners`) with the segment, threshold, previous and current
// size. JavaScript port of the Rust example; subject, text and html are the
// same byte for byte.
//
// WIT -> JS (componentize-js): records are objects with camelCase fields,
// variants are `{ tag: 'kebab-name', val }`, enums are their kebab-case name
// (`direction` is 'up' or 'down'), `option<T>` is the value or `undefined`,
// u64 is a BigInt. `email.send` returns on ok and throws on err (the error
// variant is the thrown value's `payload`). Throwing from `onEvent` makes it
// return `err(<thrown string>)`.

import { get } from 'triggerfish:plugin/config@0.1.1';
import { send } from 'triggerfish:plugin/email@0.1.1';

/** `config::get_or`: the configured value, or `fallback`. */
function configOr(key, fallback) {
  const value = get(key);
  return value === undefined || value === null ? fallback : value;
}

/** The host error variant as text, like the Rust SDK's `Error::describe`. */
function describe(e) {
  const err = e && typeof e === 'object' && 'payload' in e ? e.payload : e;
  if (!err || typeof err !== 'object' || !('tag' in err)) return String(err);
  switch (err.tag) {
    case 'denied': return `denied: ${err.val}`;
    case 'not-found': return `not found: ${err.val}`;
    case 'invalid-query': return `invalid query at ${err.val.position}: ${err.val.message}`;
    case 'rate-limited': return `rate limited: retry after ${err.val} ms`;
    case 'unavailable': return `unavailable: ${err.val}`;
    case 'invalid-argument': return `invalid argument: ${err.val}`;
    case 'deadline-exceeded': return `deadline exceeded: ${err.val}`;
    default: return `${err.tag}: ${err.val}`;
  }
}

/** Escapes `&`, `<` and `>` (not quotes), as the Rust plugin does. */
function escape(s) {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

export const handler = {
  onEvent(event) {
    if (event.trigger.tag !== 'segment-threshold-crossed') return;
    const s = event.trigger.val;
    const group = configOr('group', 'data-owners');
    const subject =
      `Segment "${s.segment}" crossed ${s.threshold} (${s.direction}): ${s.previous} -> ${s.current}`;
    const text =
      `The segment "${s.segment}" crossed its threshold.\n\n` +
      `Threshold: ${s.threshold}\nDirection: ${s.direction}\n` +
      `Previous size: ${s.previous}\nCurrent size: ${s.current}\n` +
      `When: ${event.occurredAt}\nEvent: ${event.id}\n`;
    const html =
      `<p>The segment <b>${escape(s.segment)}</b> crossed its threshold.</p>` +
      `<table><tr><td>Threshold</td><td>${s.threshold}</td></tr>` +
      `<tr><td>Direction</td><td>${s.direction}</td></tr>` +
      `<tr><td>Previous size</td><td>${s.previous}</td></tr>` +
      `<tr><td>Current size</td><td>${s.current}</td></tr></table>`;
    try {
      send({ to: [group], cc: [], subject, text, html });
    } catch (e) {
      throw `emailing '${group}': ${describe(e)}`;
    }
  },
};
