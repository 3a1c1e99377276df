// {{name}}: a Triggerfish plugin in C. On every event it posts an Adaptive
// Card naming the trigger and the event to the Teams channel named by config
// `channel` (default `ops`).
//
// `plugin.h` is generated from wit/plugin.wit by `triggerfish plugin build`
// (into build/bindings/). Ownership rules of the generated bindings:
//   - on_event owns `event` and must free it (…_handler_event_free);
//   - arguments passed to host functions are borrowed (not freed by them);
//   - values and errors returned by host functions are yours to free;
//   - the `err` string you return must be malloc'd: the bindings free it.

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

// A growable text buffer.
typedef struct {
  char *ptr;
  size_t len, cap;
  bool oom;
} buf_t;

static void put(buf_t *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->ptr, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->ptr = p;
    b->cap = cap;
  }
  memcpy(b->ptr + b->len, s, n);
  b->len += n;
  b->ptr[b->len] = '\0';
}

static void puts_(buf_t *b, const char *s) { put(b, s, strlen(s)); }

// `s` as a JSON string literal.
static void json(buf_t *b, const uint8_t *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  put(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      put(b, e, 2);
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
      put(b, e, 6);
    } else {
      put(b, (const char *)&c, 1);
    }
  }
  put(b, "\"", 1);
}

static const char *trigger_name(uint8_t tag) {
  switch (tag) {
    case TRIGGERFISH_PLUGIN_TYPES_TRIGGER_DATA_SOURCE_REFRESH_FAILED: return "data-source-refresh-failed";
    case TRIGGERFISH_PLUGIN_TYPES_TRIGGER_DATA_SOURCE_REFRESH_SUCCEEDED: return "data-source-refresh-succeeded";
    case TRIGGERFISH_PLUGIN_TYPES_TRIGGER_SEGMENT_THRESHOLD_CROSSED: return "segment-threshold-crossed";
    case TRIGGERFISH_PLUGIN_TYPES_TRIGGER_MEASURE_THRESHOLD_CROSSED: return "measure-threshold-crossed";
    case TRIGGERFISH_PLUGIN_TYPES_TRIGGER_FULL_REFRESH_COMPLETED: return "full-refresh-completed";
    case TRIGGERFISH_PLUGIN_TYPES_TRIGGER_UNIFICATION_REFRESH_COMPLETED: return "unification-refresh-completed";
    default: return "unknown";
  }
}

// The text of a host error, e.g. "denied: teams channel 'x' is not granted".
static void describe(buf_t *b, const triggerfish_plugin_types_error_t *e) {
  static const char *const kinds[] = {"denied", "not found", "invalid query", "rate limited",
                                      "unavailable", "invalid argument", "deadline exceeded"};
  puts_(b, e->tag < 7 ? kinds[e->tag] : "error");
  const plugin_string_t *detail = NULL;
  switch (e->tag) {
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_DENIED: detail = &e->val.denied; break;
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_NOT_FOUND: detail = &e->val.not_found; break;
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_INVALID_QUERY: detail = &e->val.invalid_query.message; break;
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_UNAVAILABLE: detail = &e->val.unavailable; break;
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_INVALID_ARGUMENT: detail = &e->val.invalid_argument; break;
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_DEADLINE_EXCEEDED: detail = &e->val.deadline_exceeded; break;
  }
  if (detail) {
    puts_(b, ": ");
    put(b, (const char *)detail->ptr, detail->len);
  }
}

bool exports_triggerfish_plugin_handler_on_event(exports_triggerfish_plugin_handler_event_t *event,
                                                 plugin_string_t *err) {
  const char *kind = trigger_name(event->trigger.tag);

  // config `channel`, default "ops"; a configured value is ours to free.
  plugin_string_t key, channel;
  plugin_string_set(&key, "channel");
  bool configured = triggerfish_plugin_config_get(&key, &channel);
  if (!configured) plugin_string_set(&channel, "ops");

  buf_t line = {0};
  puts_(&line, kind);
  puts_(&line, " ");
  put(&line, (const char *)event->id.ptr, event->id.len);
  if (!line.oom) {
    plugin_string_t text = {(uint8_t *)line.ptr, line.len};
    triggerfish_plugin_log_log(TRIGGERFISH_PLUGIN_LOG_LEVEL_INFO, &text);
  }

  buf_t card = {0};
  puts_(&card, "{\"type\":\"AdaptiveCard\",\"version\":\"1.4\",\"body\":["
               "{\"type\":\"TextBlock\",\"text\":\"Triggerfish: ");
  puts_(&card, kind);  // trigger names need no escaping
  puts_(&card, "\",\"weight\":\"Bolder\",\"wrap\":true},"
               "{\"type\":\"FactSet\",\"facts\":[{\"title\":\"Event\",\"value\":");
  json(&card, event->id.ptr, event->id.len);
  puts_(&card, "},{\"title\":\"When\",\"value\":");
  json(&card, event->occurred_at.ptr, event->occurred_at.len);
  puts_(&card, "}]}]}");

  buf_t failure = {0};
  if (card.oom) {
    puts_(&failure, "out of memory");
  } else {
    triggerfish_plugin_teams_message_t message;
    message.tag = TRIGGERFISH_PLUGIN_TEAMS_MESSAGE_CARD;
    message.val.card = (plugin_string_t){(uint8_t *)card.ptr, card.len};
    triggerfish_plugin_teams_error_t e;
    if (!triggerfish_plugin_teams_post_message(&channel, &message, &e)) {
      puts_(&failure, "posting to '");
      put(&failure, (const char *)channel.ptr, channel.len);
      puts_(&failure, "': ");
      describe(&failure, &e);
      triggerfish_plugin_teams_error_free(&e);
    }
  }
  bool ok = failure.len == 0 && !failure.oom;
  if (!ok) {
    if (failure.oom) plugin_string_dup(err, "out of memory");
    else plugin_string_dup_n(err, failure.ptr, failure.len);
  }

  free(failure.ptr);
  free(card.ptr);
  free(line.ptr);
  if (configured) plugin_string_free(&channel);
  exports_triggerfish_plugin_handler_event_free(event);
  return ok;
}
