// On `data-source-refresh-failed`, post an Adaptive Card with the source, the
// error and whether the failure is permanent to a Teams channel
// (config `channel`, default `ops`). JavaScript port of the Rust example.
//
// WIT -> JS (componentize-js): records are objects with camelCase fields,
// variants are `{ tag: 'kebab-name', val }`, enums are their kebab-case name,
// `option<T>` is the value or `undefined`, u64 is a BigInt. An imported
// function returning `result<_, error>` returns on ok and throws on err (the
// error variant is the thrown value's `payload`). The exported `on-event`
// returns normally for ok; throwing makes it return `err(<thrown string>)`.

import { get } from 'triggerfish:plugin/config@0.1.1';
import { postMessage } from 'triggerfish:plugin/teams@0.1.1';

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

function card(f, at) {
  const facts = [
    { title: 'Source', value: f.source },
    { title: 'Error', value: f.error },
    { title: 'Permanent', value: f.permanent ? 'yes' : 'no (retries exhausted)' },
    { title: 'Attempts', value: String(f.attempts) },
    { title: 'Rows read', value: String(f.rowsRead) },
  ];
  if (f.row !== undefined && f.row !== null) {
    facts.push({ title: 'Row', value: String(f.row) });
  }
  if (f.field !== undefined && f.field !== null) {
    facts.push({ title: 'Field', value: f.field });
  }
  facts.push({ title: 'When', value: at });
  return {
    type: 'AdaptiveCard',
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    version: '1.4',
    body: [
      {
        type: 'TextBlock',
        text: `Data source refresh failed: ${f.source}`,
        weight: 'Bolder',
        size: 'Medium',
        color: 'Attention',
        wrap: true,
      },
      { type: 'FactSet', facts },
    ],
  };
}

export const handler = {
  onEvent(event) {
    if (event.trigger.tag !== 'data-source-refresh-failed') return;
    const channel = configOr('channel', 'ops');
    const json = JSON.stringify(card(event.trigger.val, event.occurredAt));
    try {
      postMessage(channel, { tag: 'card', val: json });
    } catch (e) {
      throw `posting to '${channel}': ${describe(e)}`;
    }
  },
};
