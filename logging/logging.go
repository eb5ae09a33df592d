// Package logging builds the service's slog.Logger from the -log-level and
// -log-format flags, and keeps secrets out of log lines. Services log JSON
// by default so log shippers can parse every line; "auto" gives people at
// a terminal readable text instead. Every line names its component once.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
)

// Formats accepted by New.
const (
	FormatJSON = "json"
	FormatText = "text"
	FormatAuto = "auto"
)

// New returns a logger writing to w at level (debug, info, warn, error) in
// format (json, text, auto). auto picks text when w is a terminal and JSON
// otherwise. An empty level means info and an empty format means auto.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	lv, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch strings.ToLower(strings.TrimSpace(format)) {
	case FormatJSON:
		h = slog.NewJSONHandler(w, opts)
	case FormatText:
		h = slog.NewTextHandler(w, opts)
	case FormatAuto, "":
		if IsTerminal(w) {
			h = slog.NewTextHandler(w, opts)
		} else {
			h = slog.NewJSONHandler(w, opts)
		}
	default:
		return nil, fmt.Errorf("log format %q is not one of json, text, auto", format)
	}
	return slog.New(&oneComponent{inner: h}), nil
}

// ParseLevel maps a level name to its slog.Level; the error names the bad
// value and the accepted ones.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q is not one of debug, info, warn, error", s)
}

// IsTerminal reports whether w is a character device such as a terminal.
// Pipes, files and buffers are not.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	st, err := f.Stat()
	if err != nil {
		return false
	}
	return st.Mode()&os.ModeCharDevice != 0
}

// Redact returns dsn with any password replaced by ***, so connection
// strings can be logged: clickhouse://user:secret@host:9000/db becomes
// clickhouse://user:***@host:9000/db. Query parameters named like a
// secret (password, secret, token, …) are masked too. Input that does not
// parse as a URL is searched for a user:pass@ form by hand; when even that
// fails, the whole value is masked rather than risk leaking it.
func Redact(dsn string) string {
	if dsn == "" {
		return ""
	}
	if strings.Contains(dsn, "://") {
		if u, err := url.Parse(dsn); err == nil && (u.Host != "" || u.User != nil) {
			if p, has := u.User.Password(); u.User != nil && has && p != "" {
				u.User = url.UserPassword(u.User.Username(), "***")
			}
			if u.RawQuery != "" {
				q := u.Query()
				masked := false
				for k := range q {
					if secretKey(k) {
						q.Set(k, "***")
						masked = true
					}
				}
				if masked {
					u.RawQuery = q.Encode()
				}
			}
			// String escapes the '*' of the mask; put it back for readability.
			return strings.Replace(u.String(), "%2A%2A%2A", "***", -1)
		}
	}
	return redactByHand(dsn)
}

// RedactIn hides dsn inside text, such as an error message that quotes it:
// dsn itself becomes Redact(dsn), and its secrets (the password and
// secret-named query parameters of a URL) become *** wherever they stand
// alone.
func RedactIn(text, dsn string) string {
	if dsn == "" {
		return text
	}
	text = strings.ReplaceAll(text, dsn, Redact(dsn))
	u, err := url.Parse(dsn)
	if err != nil {
		return text
	}
	var secrets []string
	if p, _ := u.User.Password(); p != "" {
		secrets = append(secrets, p)
	}
	for k, vs := range u.Query() {
		if secretKey(k) {
			secrets = append(secrets, vs...)
		}
	}
	for _, s := range secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, "***")
		}
	}
	return text
}

// redactByHand handles what url.Parse refuses, such as a password with a
// bare '%' or '#', or a DSN without a scheme (user:pass@tcp(host)/db).
func redactByHand(dsn string) string {
	dsn = keyValueSecret.ReplaceAllString(dsn, "${1}***")
	at := strings.LastIndex(dsn, "@")
	if at < 0 {
		return dsn
	}
	start := 0
	if i := strings.Index(dsn[:at], "://"); i >= 0 {
		start = i + 3
	}
	colon := strings.Index(dsn[start:at], ":")
	if colon < 0 {
		return dsn // a user without a password
	}
	return dsn[:start+colon+1] + "***" + dsn[at:]
}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"password", "passwd", "pwd", "secret", "token", "apikey", "api_key"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// keyValueSecret finds secrets in key=value DSNs (host=db password=x).
var keyValueSecret = regexp.MustCompile(`(?i)((?:password|passwd|pwd|secret|token|api_?key)\s*=\s*)('[^']*'|"[^"]*"|[^\s;&]+)`)
