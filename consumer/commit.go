package consumer

import "sync"

// committer merges the offset commits of one generation's workers into as
// few OffsetCommit requests as it can: one at a time, each carrying every
// partition waiting by then. kafka-go's Conn serves concurrent requests by
// letting each waiter poll the socket in turn until its own response
// arrives, so a dozen workers committing at once mostly spin; one request
// costs one round trip.
type committer struct {
	commit func(map[string]map[int]int64) error // Generation.CommitOffsets

	mu      sync.Mutex
	busy    bool // a caller is committing on everyone's behalf
	pending map[string]map[int]int64
	waiters []chan error
}

// Commit commits offsets, with whatever other workers are committing, and
// returns the result of the request that carried them.
func (c *committer) Commit(offsets map[string]map[int]int64) error {
	done := make(chan error, 1)
	c.mu.Lock()
	if c.pending == nil {
		c.pending = map[string]map[int]int64{}
	}
	for t, ps := range offsets {
		if c.pending[t] == nil {
			c.pending[t] = map[int]int64{}
		}
		for p, off := range ps {
			c.pending[t][p] = max(c.pending[t][p], off)
		}
	}
	c.waiters = append(c.waiters, done)
	if c.busy {
		c.mu.Unlock()
		return <-done
	}
	// Commit on behalf of everyone waiting, until nobody is.
	c.busy = true
	for len(c.waiters) > 0 {
		batch, waiters := c.pending, c.waiters
		c.pending, c.waiters = nil, nil
		c.mu.Unlock()
		err := c.commit(batch)
		for _, w := range waiters {
			w <- err
		}
		c.mu.Lock()
	}
	c.busy = false
	c.mu.Unlock()
	return <-done
}
