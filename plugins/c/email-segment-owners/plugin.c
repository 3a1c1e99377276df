// On `segment-threshold-crossed`, email the data owners (config `group`,
// default `data-owners`) with the segment, threshold, previous and current
// size. C port of plugins/email-segment-owners.
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

// HTML text: `&`, `<` and `>` escaped, as in the Rust plugin.
static void html_str(buf_t *b, const plugin_string_t *s) {
  const char *p = (const char *)s->ptr;
  size_t start = 0;
  for (size_t i = 0; i < s->len; i++) {
    const char *esc = p[i] == '&' ? "&amp;" : p[i] == '<' ? "&lt;" : p[i] == '>' ? "&gt;" : NULL;
    if (esc) {
      buf_put(b, p + start, i - start);
      buf_puts(b, esc);
      start = i + 1;
    }
  }
  buf_put(b, p + start, s->len - start);
}

// ---- the handler ------------------------------------------------------------

bool exports_triggerfish_plugin_handler_on_event(exports_triggerfish_plugin_handler_event_t *event,
                                                 plugin_string_t *err) {
  bool ok = true;
  if (event->trigger.tag != TRIGGERFISH_PLUGIN_TYPES_TRIGGER_SEGMENT_THRESHOLD_CROSSED) {
    exports_triggerfish_plugin_handler_event_free(event);
    return true;
  }
  const triggerfish_plugin_types_segment_threshold_crossed_t *s =
      &event->trigger.val.segment_threshold_crossed;
  const char *direction = s->direction == TRIGGERFISH_PLUGIN_TYPES_DIRECTION_UP ? "up" : "down";

  plugin_string_t key, group;
  plugin_string_set(&key, "group");
  bool configured = triggerfish_plugin_config_get(&key, &group);  // owned when true
  if (!configured) plugin_string_set(&group, "data-owners");     // borrowed literal

  buf_t subject = {0}, text = {0}, html = {0}, msg = {0};

  buf_puts(&subject, "Segment \"");
  buf_str(&subject, &s->segment);
  buf_puts(&subject, "\" crossed ");
  buf_u64(&subject, s->threshold);
  buf_puts(&subject, " (");
  buf_puts(&subject, direction);
  buf_puts(&subject, "): ");
  buf_u64(&subject, s->previous);
  buf_puts(&subject, " -> ");
  buf_u64(&subject, s->current);

  buf_puts(&text, "The segment \"");
  buf_str(&text, &s->segment);
  buf_puts(&text, "\" crossed its threshold.\n\nThreshold: ");
  buf_u64(&text, s->threshold);
  buf_puts(&text, "\nDirection: ");
  buf_puts(&text, direction);
  buf_puts(&text, "\nPrevious size: ");
  buf_u64(&text, s->previous);
  buf_puts(&text, "\nCurrent size: ");
  buf_u64(&text, s->current);
  buf_puts(&text, "\nWhen: ");
  buf_str(&text, &event->occurred_at);
  buf_puts(&text, "\nEvent: ");
  buf_str(&text, &event->id);
  buf_puts(&text, "\n");

  buf_puts(&html, "<p>The segment <b>");
  html_str(&html, &s->segment);
  buf_puts(&html,
           "</b> crossed its threshold.</p>"
           "<table><tr><td>Threshold</td><td>");
  buf_u64(&html, s->threshold);
  buf_puts(&html, "</td></tr><tr><td>Direction</td><td>");
  buf_puts(&html, direction);
  buf_puts(&html, "</td></tr><tr><td>Previous size</td><td>");
  buf_u64(&html, s->previous);
  buf_puts(&html, "</td></tr><tr><td>Current size</td><td>");
  buf_u64(&html, s->current);
  buf_puts(&html, "</td></tr></table>");

  if (subject.oom || text.oom || html.oom) {
    buf_puts(&msg, "out of memory building the email");
  } else {
    plugin_string_t to[1] = {group};
    triggerfish_plugin_email_message_t message;
    message.to.ptr = to;
    message.to.len = 1;
    message.cc.ptr = NULL;
    message.cc.len = 0;
    message.subject = (plugin_string_t){(uint8_t *)subject.ptr, subject.len};
    message.text = (plugin_string_t){(uint8_t *)text.ptr, text.len};
    message.html.is_some = true;
    message.html.val = (plugin_string_t){(uint8_t *)html.ptr, html.len};
    triggerfish_plugin_email_error_t e;
    if (!triggerfish_plugin_email_send(&message, &e)) {
      buf_puts(&msg, "emailing '");
      buf_str(&msg, &group);
      buf_puts(&msg, "': ");
      describe(&msg, &e);
      triggerfish_plugin_email_error_free(&e);
    }
  }
  if (msg.len > 0 || msg.oom) {
    ok = msg.oom ? fail(err, "out of memory", 13) : fail(err, msg.ptr, msg.len);
  }

  free(subject.ptr);
  free(text.ptr);
  free(html.ptr);
  free(msg.ptr);
  if (configured) plugin_string_free(&group);
  exports_triggerfish_plugin_handler_event_free(event);
  return ok;
}
