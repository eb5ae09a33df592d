// Package alert delivers neglect alerts (docs/model.md) out of Pyramid.
//
// Two sinks take the alerts of each flushed batch:
//
//   - Topic writes every alert to the Kafka topic pyramid.alerts, keyed by
//     account_id, before Write returns. It is part of the durable flush: the
//     pipeline commits input offsets only after it succeeded, so the topic is
//     the record of every alert, and other systems subscribe to it.
//   - Webhook POSTs each alert as JSON to one URL, signed with HMAC-SHA256
//     (see Sign and Verify). A receiver is outside our control, so Write only
//     enqueues: a background goroutine delivers, retries network errors, 5xx
//     and 429 with exponential backoff and jitter, and gives up after a
//     bounded time per alert. Alerts it gives up on, rejected ones (other
//     4xx) and those that find the queue full go to the dead-letter topic
//     pyramid.alerts.dlq with a header saying why (when even the
//     dead-letter buffer is full, Write writes the overflow there itself, a
//     wait on Kafka, bounded, never on the receiver). A receiver that stays
//     down therefore never stalls scoring.
//
// Delivery is at least once on both paths: a batch written again after a
// crash repeats its alerts. alert_id is deterministic, so receivers dedupe
// on (alert_id, status); the X-Pyramid-Alert-Id header carries the id.
package alert
