package kafkaapi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is a request Pyramid would send that a broker refuses.
type Problem struct {
	Request Request
	// Version is what kafka-go would send, -1 when it finds none.
	Version int16
	// Accepts is what the broker takes; Offered is false when it does
	// not advertise the API at all.
	Accepts Range
	Offered bool
}

func (p Problem) Error() string {
	name := Name(p.Request.Key)
	switch {
	case !p.Offered:
		return fmt.Sprintf("the broker does not offer %s, which Pyramid needs for %s", name, p.Request.For)
	case p.Version < 0:
		return fmt.Sprintf("the broker accepts %s %s, and kafka-go can send none of those (%s), which Pyramid needs for %s",
			name, p.Accepts, p.Request.Sends(), p.Request.For)
	}
	s := fmt.Sprintf("the broker refuses %s v%d, which Pyramid sends for %s (it accepts %s)", name, p.Version, p.Request.For, p.Accepts)
	r, removed := removalOf(p.Request.Key, p.Version)
	switch {
	case removed && r.Restored != "":
		s += fmt.Sprintf("; %s: upgrade the brokers to Kafka %s or later", r, r.Restored)
	case removed:
		s += "; " + r.String()
	case p.Version > p.Accepts.Max:
		s += "; the broker is older than any Kafka release Pyramid supports (see docs/operations.md)"
	default:
		s += "; no Kafka release up to 4.3 dropped that version, so this broker is newer than this Pyramid knows (see docs/operations.md)"
	}
	return s
}

// Check returns the requests of Requests that a broker advertising bv
// would refuse, each at the version kafka-go would send. ApiVersions is
// never refused: a broker answers any version of it.
func Check(bv Versions) []Problem {
	var out []Problem
	for _, r := range Requests {
		if r.Key == ApiVersions {
			continue
		}
		acc, ok := Accepted(bv, r.Key)
		v, sends := r.Version(bv)
		if !ok || !sends || !acc.Has(v) {
			if !sends {
				v = -1
			}
			out = append(out, Problem{Request: r, Version: v, Accepts: acc, Offered: ok})
		}
	}
	return out
}

// Summary lists, for every API Pyramid uses, the range the broker
// advertises and the versions kafka-go will send, e.g.
// "JoinGroup v0-9 (sends v2), Metadata v0-13 (sends v6, v8)".
func Summary(bv Versions) string {
	var keys []int16
	sends := map[int16][]string{}
	for _, r := range Requests {
		if !slices.Contains(keys, r.Key) {
			keys = append(keys, r.Key)
		}
		if v, ok := r.Version(bv); ok {
			s := "v" + strconv.Itoa(int(v))
			if !slices.Contains(sends[r.Key], s) {
				sends[r.Key] = append(sends[r.Key], s)
			}
		}
	}
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		adv := "not offered"
		if r, ok := bv[k]; ok {
			adv = r.String()
		}
		parts = append(parts, fmt.Sprintf("%s %s (sends %s)", Name(k), adv, strings.Join(sends[k], ", ")))
	}
	return strings.Join(parts, ", ")
}

// Era says which of the known removals a broker advertising bv has made,
// judged from its minima: "before 4.0", "4.0.0" (KIP-896 with JoinGroup
// v0-1 refused) or "4.0.1 or later".
func Era(bv Versions) string {
	if f, ok := bv[Fetch]; !ok || f.Min < 4 {
		return "before 4.0"
	}
	if j, ok := bv[JoinGroup]; ok && j.Min >= 2 {
		return "4.0.0"
	}
	return "4.0.1 or later"
}
