// On `data-source-refresh-failed`, post an Adaptive Card with the source, the
// error and whether the failure is permanent to a Teams channel
// (config `channel`, default `ops`). C port of plugins/teams-on-refresh-failure.
//
// Ownership (wit-bindgen C): the exported function owns `event` and frees it;
// arguments passed to imports are borrowed; values and errors returned by
// imports are owned by us; the `err` string we return is freed by the
// generated post-return function, so it must come from malloc.

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

// ---- a growable byte buffer -------------------------------------------------

typedef struct {
  char *ptr;
  size_t len;
  size_t cap;
  bool oom;
} buf_t;

static void buf_put(buf_t *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->ptr, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->ptr = p;
    b->cap = cap;
  }
  if (n) memcpy(b->ptr + b->len, s, n);
  b->len += n;
  b->ptr[b->len] = '\0';
}

static void buf_puts(buf_t *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_str(buf_t *b, const plugin_string_t *s) {
  buf_put(b, (const char *)s->ptr, s->len);
}

// Decimal digits of `v` into `tmp` (at least 20 bytes); returns the start.
// (Avoids printf, which pulls ~100 KB of formatting code into the module.)
static const char *u64_digits(char tmp[20], uint64_t v, size_t *len) {
  char *end = tmp + 20, *p = end;
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  *len = (size_t)(end - p);
  return p;
}

static void buf_u64(buf_t *b, uint64_t v) {
  char tmp[20];
  size_t n;
  const char *d = u64_digits(tmp, v, &n);
  buf_put(b, d, n);
}

// A JSON string literal, escaped like serde_json: `"` `\` and control
// characters; everything else (UTF-8 included) is copied as is.
static void json_str(buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  buf_put(b, "\"", 1);
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[7];
    switch (c) {
      case '"': esc = "\\\""; break;
      case '\\': esc = "\\\\"; break;
      case '\b': esc = "\\b"; break;
      case '\f': esc = "\\f"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      default:
        if (c < 0x20) {
          memcpy(u, "\\u00", 4);
          u[4] = hex[c >> 4];
          u[5] = hex[c & 0xf];
          u[6] = '\0';
          esc = u;
        }
    }
    if (esc) {
      buf_put(b, s + start, i - start);
      buf_puts(b, esc);
      start = i + 1;
    }
  }
  buf_put(b, s + start, n - start);
  buf_put(b, "\"", 1);
}

static void json_cstr(buf_t *b, const char *s) { json_str(b, s, strlen(s)); }

// ---- host errors ------------------------------------------------------------

// Same text as the Rust SDK's `Error::describe`.
static void describe(buf_t *b, const triggerfish_plugin_types_error_t *e) {
  switch (e->tag) {
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_DENIED:
      buf_puts(b, "denied: ");
      buf_str(b, &e->val.denied);
      break;
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_NOT_FOUND:
      buf_puts(b, "not found: ");
      buf_str(b, &e->val.not_found);
      break;
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_INVALID_QUERY:
      buf_puts(b, "invalid query at ");
      buf_u64(b, e->val.invalid_query.position);
      buf_puts(b, ": ");
      buf_str(b, &e->val.invalid_query.message);
      break;
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_RATE_LIMITED:
      buf_puts(b, "rate limited: retry after ");
      buf_u64(b, e->val.rate_limited);
      buf_puts(b, " ms");
      break;
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_UNAVAILABLE:
      buf_puts(b, "unavailable: ");
      buf_str(b, &e->val.unavailable);
      break;
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_INVALID_ARGUMENT:
      buf_puts(b, "invalid argument: ");
      buf_str(b, &e->val.invalid_argument);
      break;
    case TRIGGERFISH_PLUGIN_TYPES_ERROR_DEADLINE_EXCEEDED:
      buf_puts(b, "deadline exceeded: ");
      buf_str(b, &e->val.deadline_exceeded);
      break;
    default:
      buf_puts(b, "unknown error");
  }
}

// Hand a message to the host as the handler's error (freed by post-return).
static bool fail(plugin_string_t *err, const char *msg, size_t len) {
  plugin_string_dup_n(err, msg, len);
  return false;
}

// ---- the card ---------------------------------------------------------------

static void fact(buf_t *b, bool *first, const char *title, const char *value, size_t len) {
  if (!*first) buf_put(b, ",", 1);
  *first = false;
  buf_puts(b, "{\"title\":");
  json_cstr(b, title);
  buf_puts(b, ",\"value\":");
  json_str(b, value, len);
  buf_put(b, "}", 1);
}

static void fact_s(buf_t *b, bool *first, const char *title, const plugin_string_t *v) {
  fact(b, first, title, (const char *)v->ptr, v->len);
}

static void fact_u64(buf_t *b, bool *first, const char *title, uint64_t v) {
  char tmp[20];
  size_t n;
  const char *d = u64_digits(tmp, v, &n);
  fact(b, first, title, d, n);
}

static void card(buf_t *b, const triggerfish_plugin_types_data_source_refresh_failed_t *f,
                 const plugin_string_t *at) {
  buf_puts(b,
           "{\"type\":\"AdaptiveCard\","
           "\"$schema\":\"http://adaptivecards.io/schemas/adaptive-card.json\","
           "\"version\":\"1.4\","
           "\"body\":[{\"type\":\"TextBlock\",\"text\":");
  buf_t title = {0};
  buf_puts(&title, "Data source refresh failed: ");
  buf_str(&title, &f->source);
  if (title.oom) b->oom = true;
  else json_str(b, title.ptr, title.len);
  free(title.ptr);
  buf_puts(b,
           ",\"weight\":\"Bolder\",\"size\":\"Medium\",\"color\":\"Attention\",\"wrap\":true},"
           "{\"type\":\"FactSet\",\"facts\":[");
  bool first = true;
  fact_s(b, &first, "Source", &f->source);
  fact_s(b, &first, "Error", &f->error);
  const char *permanent = f->permanent ? "yes" : "no (retries exhausted)";
  fact(b, &first, "Permanent", permanent, strlen(permanent));
  fact_u64(b, &first, "Attempts", f->attempts);
  fact_u64(b, &first, "Rows read", f->rows_read);
  if (f->row.is_some) fact_u64(b, &first, "Row", f->row.val);
  if (f->field.is_some) fact_s(b, &first, "Field", &f->field.val);
  fact_s(b, &first, "When", at);
  buf_puts(b, "]}]}");
}

// ---- the handler ------------------------------------------------------------

bool exports_triggerfish_plugin_handler_on_event(exports_triggerfish_plugin_handler_event_t *event,
                                                 plugin_string_t *err) {
  bool ok = true;
  if (event->trigger.tag != TRIGGERFISH_PLUGIN_TYPES_TRIGGER_DATA_SOURCE_REFRESH_FAILED) {
    exports_triggerfish_plugin_handler_event_free(event);
    return true;
  }

  plugin_string_t key, channel;
  plugin_string_set(&key, "channel");
  bool configured = triggerfish_plugin_config_get(&key, &channel);  // owned when true
  if (!configured) plugin_string_set(&channel, "ops");             // borrowed literal

  buf_t json = {0};
  card(&json, &event->trigger.val.data_source_refresh_failed, &event->occurred_at);

  buf_t msg = {0};
  if (json.oom) {
    buf_puts(&msg, "out of memory building the card");
  } else {
    triggerfish_plugin_teams_message_t message;
    message.tag = TRIGGERFISH_PLUGIN_TEAMS_MESSAGE_CARD;
    message.val.card.ptr = (uint8_t *)json.ptr;
    message.val.card.len = json.len;
    triggerfish_plugin_teams_error_t e;
    if (!triggerfish_plugin_teams_post_message(&channel, &message, &e)) {
      buf_puts(&msg, "posting to '");
      buf_str(&msg, &channel);
      buf_puts(&msg, "': ");
      describe(&msg, &e);
      triggerfish_plugin_teams_error_free(&e);
    }
  }
  if (msg.len > 0 || msg.oom) {
    ok = msg.oom ? fail(err, "out of memory", 13) : fail(err, msg.ptr, msg.len);
  }

  free(msg.ptr);
  free(json.ptr);
  if (configured) plugin_string_free(&channel);
  exports_triggerfish_plugin_handler_event_free(event);
  return ok;
}
