package consumer

import (
	"errors"
	"maps"
	"sync"
	"testing"
)

// Commits that arrive while one is in flight go out together in the next
// request, each caller gets the result of the request that carried its
// offsets, and a partition committed twice keeps its highest offset.
func TestCommitterMergesConcurrentCommits(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var calls []map[string]map[int]int64
	failSecond := errors.New("coordinator moved")
	c := &committer{commit: func(o map[string]map[int]int64) error {
		mu.Lock()
		calls = append(calls, o)
		n := len(calls)
		mu.Unlock()
		if n == 1 {
			<-release
			return nil
		}
		return failSecond
	}}

	results := make(chan error, 4)
	go func() { results <- c.Commit(map[string]map[int]int64{"t": {0: 5}}) }()
	waitUntil(t, "the first commit", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 1 })
	for _, o := range []map[string]map[int]int64{{"t": {1: 7}}, {"t": {2: 9}, "u": {2: 3}}, {"t": {1: 6}}} {
		go func() { results <- c.Commit(o) }()
	}
	waitUntil(t, "three waiting commits", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.waiters) == 3 })
	close(release)

	var ok, failed int
	for range 4 {
		switch err := <-results; {
		case err == nil:
			ok++
		case errors.Is(err, failSecond):
			failed++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if ok != 1 || failed != 3 {
		t.Errorf("%d callers saw success and %d the second request's error; want 1 and 3", ok, failed)
	}
	if len(calls) != 2 {
		t.Fatalf("%d requests for 4 commits, want 2: %v", len(calls), calls)
	}
	want := map[string]map[int]int64{"t": {1: 7, 2: 9}, "u": {2: 3}}
	if !maps.EqualFunc(calls[1], want, maps.Equal) {
		t.Errorf("second request carried %v, want %v", calls[1], want)
	}
}
