// {{name}}: a Triggerfish plugin in JavaScript.
//
// On every event it is subscribed to, posts a short Adaptive Card naming the
// trigger kind and the event id to a Teams channel (config `channel`,
// default `ops`). The channel must be granted to this plugin in the host's
// triggerfish.toml (`[plugins.grants] teams = ["ops"]`).
//
// How WIT types look in JavaScript (componentize-js):
//   - records are objects with camelCase fields (`event.occurredAt`);
//   - variants are `{ tag: 'kebab-name', val }` (`event.trigger.tag`);
//   - enums are their kebab-case names ('up', 'down');
//   - option<T> is the value or `undefined`; u64/s64 are BigInt, u32 a number;
//   - a host function returning result<_, error> returns on ok and throws on
//     err, with the error variant as the thrown value's `payload`;
//   - `onEvent` returns for ok; whatever it throws becomes `err(text)`.

import { get } from 'triggerfish:plugin/config@0.1.1';
import { log } from 'triggerfish:plugin/log@0.1.1';
import { postMessage } from 'triggerfish:plugin/teams@0.1.1';

/** The configured value for `key`, or `fallback`. */
function configOr(key, fallback) {
  const value = get(key);
  return value === undefined || value === null ? fallback : value;
}

/** A host `error` variant as text, e.g. `denied: channel 'ops'`. */
function describe(e) {
  const err = e && typeof e === 'object' && 'payload' in e ? e.payload : e;
  if (!err || typeof err !== 'object' || !('tag' in err)) return String(err);
  if (err.tag === 'invalid-query') return `invalid query at ${err.val.position}: ${err.val.message}`;
  return `${err.tag.replaceAll('-', ' ')}: ${err.val}`;
}

export const handler = {
  onEvent(event) {
    const channel = configOr('channel', 'ops');
    const card = {
      type: 'AdaptiveCard',
      $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
      version: '1.4',
      body: [
        { type: 'TextBlock', text: `{{name}}: ${event.trigger.tag}`, weight: 'Bolder', wrap: true },
        {
          type: 'FactSet',
          facts: [
            { title: 'Event', value: event.id },
            { title: 'When', value: event.occurredAt },
          ],
        },
      ],
    };
    try {
      postMessage(channel, { tag: 'card', val: JSON.stringify(card) });
    } catch (e) {
      throw `posting to '${channel}': ${describe(e)}`;
    }
    log('info', `posted ${event.trigger.tag} ${event.id} to '${channel}'`);
  },
};
