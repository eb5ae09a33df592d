package clickhouse

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// healableCodes are ClickHouse server error codes that go away by
// themselves: overload, timeouts, network trouble, a restarting server.
var healableCodes = map[int32]bool{
	159: true, // TIMEOUT_EXCEEDED
	201: true, // QUOTA_EXCEEDED
	202: true, // TOO_MANY_SIMULTANEOUS_QUERIES
	203: true, // NO_FREE_CONNECTION
	209: true, // SOCKET_TIMEOUT
	210: true, // NETWORK_ERROR
	236: true, // ABORTED
	241: true, // MEMORY_LIMIT_EXCEEDED
	242: true, // TABLE_IS_READ_ONLY
	252: true, // TOO_MANY_PARTS
	285: true, // TOO_FEW_LIVE_REPLICAS
	319: true, // UNKNOWN_STATUS_OF_INSERT
	373: true, // SESSION_IS_LOCKED
	394: true, // QUERY_WAS_CANCELLED (server shutting down)
	425: true, // SYSTEM_ERROR
	439: true, // CANNOT_SCHEDULE_TASK
	999: true, // KEEPER_EXCEPTION
}

// Retryable reports whether err can heal by itself, so the write should be
// tried again: connection refused or reset, timeouts, EOF, an overloaded or
// restarting server. A missing table or column, a type mismatch or bad
// credentials need a person and are not retryable.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var vc *viewChanging
	if errors.As(err, &vc) {
		return true
	}
	var ex *ch.Exception
	if errors.As(err, &ex) {
		return healableCodes[ex.Code]
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ch.ErrAcquireConnTimeout) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ETIMEDOUT) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// The driver does not wrap every network error with %w; fall back to
	// the texts they carry.
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "broken pipe", "EOF", "i/o timeout",
		"bad connection", "use of closed network connection", "no route to host", "server is overloaded"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
