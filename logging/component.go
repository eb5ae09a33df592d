package logging

import (
	"context"
	"log/slog"
)

// ComponentKey names the part of Pyramid a log line comes from.
const ComponentKey = "component"

// oneComponent keeps a single component attribute per line. The wiring
// names a part when it hands it a logger, and the part may name itself
// more precisely ("webhook", then "alert.webhook"); slog would print both,
// and a JSON line with a key twice is read differently by every log
// shipper. The innermost name wins.
type oneComponent struct {
	inner     slog.Handler
	component slog.Attr // zero until a component is set
}

func (h *oneComponent) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *oneComponent) Handle(ctx context.Context, r slog.Record) error {
	if h.component.Key != "" {
		r = r.Clone()
		r.AddAttrs(h.component)
	}
	return h.inner.Handle(ctx, r)
}

func (h *oneComponent) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	rest := make([]slog.Attr, 0, len(attrs))
	for _, a := range attrs {
		if a.Key == ComponentKey {
			n.component = a
			continue
		}
		rest = append(rest, a)
	}
	if len(rest) > 0 {
		n.inner = h.inner.WithAttrs(rest)
	}
	return &n
}

// WithGroup fixes the component outside the group first, so that it stays
// a top-level key.
func (h *oneComponent) WithGroup(name string) slog.Handler {
	inner := h.inner
	if h.component.Key != "" {
		inner = inner.WithAttrs([]slog.Attr{h.component})
	}
	return &oneComponent{inner: inner.WithGroup(name)}
}
