package clickhouse

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// What docs/clickhouse.md promises about the snapshot tables, as queries a
// test or an operator can run on a live database.

// contentColumns are the snapshot columns besides the key.
var contentColumns = strings.Split(strings.TrimPrefix(snapshotColumns, "account_id, version, "), ", ")

// ConflictingVersions counts the (account_id, version) pairs of
// account_snapshots that carry more than one distinct content (a row
// written twice must be byte-identical), and describes up to max of
// them, naming the columns that differ.
func ConflictingVersions(ctx context.Context, conn driver.Conn, max int) (uint64, []string, error) {
	all := strings.Join(contentColumns, ", ")
	groups := "FROM " + TableSnapshots + " GROUP BY account_id, version HAVING uniqExact((" + all + ")) > 1"
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM (SELECT account_id, version "+groups+")").Scan(&n); err != nil {
		return 0, nil, fmt.Errorf("counting conflicting versions: %w", err)
	}
	if n == 0 || max <= 0 {
		return n, nil, nil
	}
	per := make([]string, len(contentColumns))
	for i, c := range contentColumns {
		per[i] = "uniqExact(tuple(" + c + "))" // a Nullable column would make a Nullable count on 18.16
	}
	rows, err := conn.Query(ctx, "SELECT account_id, version, count() AS copies, ["+strings.Join(per, ", ")+"] AS per_column "+
		groups+fmt.Sprintf(" ORDER BY account_id, version LIMIT %d", max))
	if err != nil {
		return n, nil, fmt.Errorf("listing conflicting versions: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		var v, copies uint64
		var counts []uint64
		if err := rows.Scan(&id, &v, &copies, &counts); err != nil {
			return n, out, err
		}
		var differ []string
		for i, c := range counts {
			if c > 1 {
				differ = append(differ, contentColumns[i])
			}
		}
		out = append(out, fmt.Sprintf("%s v%d: %d rows, differing in %s", id, v, copies, strings.Join(differ, ", ")))
	}
	return n, out, rows.Err()
}

// CurrentMismatches compares account_latest, which reads the current-state
// table, with the newest version of every account in the history
// (account_snapshots), column by column, and describes each account where
// they differ. Empty means the current state is exactly the history's.
func CurrentMismatches(ctx context.Context, conn driver.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `
SELECT account_id,
    countIf(side = 'current') AS in_current, maxIf(version, side = 'current') AS current_version,
    countIf(side = 'history') AS in_history, maxIf(version, side = 'history') AS history_version,
    uniqExact((`+snapshotColumns+`)) AS contents
FROM
(
    SELECT 'current' AS side, `+snapshotColumns+` FROM account_latest
    UNION ALL
    SELECT 'history' AS side, `+snapshotColumns+` FROM `+TableSnapshots+` FINAL
    WHERE (account_id, version) IN (SELECT account_id, max(version) FROM `+TableSnapshots+` GROUP BY account_id)
)
GROUP BY account_id
HAVING in_current != 1 OR in_history != 1 OR contents != 1
ORDER BY account_id`)
	if err != nil {
		return nil, fmt.Errorf("comparing account_latest with the history: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		var inCur, curV, inHist, histV, contents uint64
		if err := rows.Scan(&id, &inCur, &curV, &inHist, &histV, &contents); err != nil {
			return out, err
		}
		switch {
		case inCur == 0:
			out = append(out, fmt.Sprintf("account %s: not in account_latest (history version %d)", id, histV))
		case inHist == 0:
			out = append(out, fmt.Sprintf("account %s: not in the history (account_latest version %d)", id, curV))
		case inCur > 1:
			out = append(out, fmt.Sprintf("account %s: %d rows in account_latest", id, inCur))
		default:
			out = append(out, fmt.Sprintf("account %s: account_latest has version %d, the history %d, %d different contents", id, curV, histV, contents))
		}
	}
	return out, rows.Err()
}
