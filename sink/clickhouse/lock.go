package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// LockTable is the table whose existence means a migration is running.
//
// ClickHouse has no transactions and no advisory locks, but creating a
// table is atomic on 18.16 and on current releases: of several CREATE
// TABLE statements for one name, exactly one succeeds and the others fail
// with TABLE_ALREADY_EXISTS. The holder writes a heartbeat row every few
// seconds and drops the table when done; a lock without a heartbeat for
// LockStale (its holder was killed) is taken over.
const LockTable = "pyramid_migrate_lock"

// lock is a held migration lock.
type lock struct {
	conn   driver.Conn
	qdb    string
	holder string
	stop   context.CancelFunc
	done   sync.WaitGroup
}

// acquireLock takes the migration lock of database qdb, waiting while a
// live holder has it. It gives up when ctx ends, naming the holder.
func acquireLock(ctx context.Context, conn driver.Conn, qdb string, stale time.Duration, log *slog.Logger) (*lock, error) {
	host, _ := os.Hostname()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	l := &lock{conn: conn, qdb: qdb, holder: fmt.Sprintf("%s pid %d (%s)", host, os.Getpid(), hex.EncodeToString(rnd[:]))}
	table := qdb + "." + LockTable
	waiting := ""
	for {
		err := conn.Exec(ctx, "CREATE TABLE "+table+" (holder String, heartbeat DateTime('UTC')) ENGINE = Log")
		if err == nil {
			if err := l.beat(ctx); err != nil {
				_ = conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+table)
				return nil, err
			}
			hctx, stop := context.WithCancel(context.WithoutCancel(ctx))
			l.stop = stop
			l.done.Add(1)
			go l.heartbeat(hctx, stale/5)
			return l, nil
		}
		var ex *ch.Exception
		if !errors.As(err, &ex) || ex.Code != 57 { // TABLE_ALREADY_EXISTS
			return nil, fmt.Errorf("migrate: taking the lock %s: %w", table, err)
		}
		// An error here means the holder dropped the lock meanwhile: try again.
		if holder, age, err := lockState(ctx, conn, qdb); err == nil {
			if age >= stale {
				log.Warn("taking over a stale migration lock", "holder", holder, "silent_for", age.Round(time.Second))
				_ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+table)
				continue
			}
			if waiting != holder {
				waiting = holder
				log.Info("waiting for another migration to finish", "holder", holder, "lock", LockTable)
			}
		}
		select {
		case <-ctx.Done():
			if waiting == "" {
				waiting = "another pyramid migrate"
			}
			return nil, fmt.Errorf("migrate: waiting for the migration lock held by %s (if no migration runs, it is taken over %v after its last heartbeat, or drop it: DROP TABLE %s): %w",
				waiting, stale, table, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// lockState returns the lock's holder and how long ago it showed life
// (its last heartbeat, or the table's creation before the first one), by
// the server's clock.
func lockState(ctx context.Context, conn driver.Conn, qdb string) (string, time.Duration, error) {
	var holder string
	var age int64
	err := conn.QueryRow(ctx, "SELECT holder, toInt64(now()) - toInt64(heartbeat) FROM "+qdb+"."+LockTable+" ORDER BY heartbeat DESC LIMIT 1").Scan(&holder, &age)
	if err == nil {
		return holder, time.Duration(age) * time.Second, nil
	}
	// No heartbeat yet: the holder created the table a moment ago.
	err = conn.QueryRow(ctx, "SELECT toInt64(now()) - toInt64(metadata_modification_time) FROM system.tables WHERE database = currentDatabase() AND name = ?", LockTable).Scan(&age)
	return "another pyramid migrate (starting)", time.Duration(age) * time.Second, err
}

func (l *lock) beat(ctx context.Context) error {
	return l.conn.Exec(ctx, "INSERT INTO "+l.qdb+"."+LockTable+" (holder, heartbeat) SELECT ?, now()", l.holder)
}

func (l *lock) heartbeat(ctx context.Context, every time.Duration) {
	defer l.done.Done()
	t := time.NewTicker(max(every, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = l.beat(ctx) // a missed beat is made up by the next
		}
	}
}

// release stops the heartbeat and drops the lock if it is still ours (a
// holder silent for too long may have lost it to another migration).
func (l *lock) release(ctx context.Context) {
	l.stop()
	l.done.Wait()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if holder, _, err := lockState(ctx, l.conn, l.qdb); err == nil && holder == l.holder {
		_ = l.conn.Exec(ctx, "DROP TABLE IF EXISTS "+l.qdb+"."+LockTable)
	}
}
