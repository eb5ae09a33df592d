package broker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pyramid-crm/pyramid/internal/kafkaapi"
)

// Emulation makes a kfake cluster accept the protocol versions of one
// Kafka release and records every request it receives.
//
// kfake implements the newest protocol and accepts nearly every old
// version too. An emulated release advertises in ApiVersions what that
// release advertises (its maxima, capped to what kfake implements, and
// its minima after Removals), and refuses any other version the way Kafka
// does: it closes the connection without an answer (Kafka's SocketServer
// fails the request header and drops the channel), so a client sees what
// it would see against the real release. Versions kfake itself cannot
// serve are refused as well and recorded as such.
//
// With no release, the cluster keeps kfake's own ranges; the emulation
// then only records.
type Emulation struct {
	release string

	mu      sync.Mutex
	adv     *kmsg.ApiVersionsResponse // the ApiVersions answer
	accept  map[int16]kafkaapi.Range
	sent    map[Request]int
	refused map[Request]string // why
}

// Request is a request key at one version.
type Request struct{ Key, Version int16 }

func (r Request) String() string { return fmt.Sprintf("%s v%d", kmsg.NameForKey(r.Key), r.Version) }

// NewEmulation returns an emulation of release (one of
// kafkaapi.Releases), or of kfake as it is for "".
func NewEmulation(release string) (*Emulation, error) {
	if _, ok := kafkaapi.MaxVersions(release); !ok && release != "" {
		return nil, fmt.Errorf("broker: cannot emulate Kafka %q; known releases: %v", release, kafkaapi.Releases)
	}
	return &Emulation{release: release, sent: map[Request]int{}, refused: map[Request]string{}}, nil
}

// Release is the emulated release, "" for kfake's own ranges.
func (e *Emulation) Release() string { return e.release }

// Opts are the kfake options the cluster must be created with.
func (e *Emulation) Opts() []kfake.Opt {
	if e.release == "" {
		return nil
	}
	mv, _ := kafkaapi.MaxVersions(e.release)
	return []kfake.Opt{kfake.MaxVersions(mv)}
}

// Attach starts emulating on c, which must have been created with Opts.
// Requests that reached c before are not recorded.
func (e *Emulation) Attach(c *kfake.Cluster) error {
	adv, err := askVersions(c.ListenAddrs())
	if err != nil {
		return fmt.Errorf("broker: reading kfake's API versions: %w", err)
	}
	e.accept = map[int16]kafkaapi.Range{}
	for i := range adv.ApiKeys {
		k := &adv.ApiKeys[i]
		acc := kafkaapi.Range{Min: k.MinVersion, Max: k.MaxVersion}
		if e.release != "" {
			// Advertise the release's minimum; accept only what both
			// the release and kfake take.
			relMin, advMin := kafkaapi.MinVersion(k.ApiKey, e.release)
			acc.Min = max(acc.Min, relMin)
			k.MinVersion = advMin
		}
		e.accept[k.ApiKey] = acc
	}
	e.adv = adv
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return e.handle(req)
	})
	return nil
}

func (e *Emulation) handle(req kmsg.Request) (kmsg.Response, error, bool) {
	r := Request{Key: req.Key(), Version: req.GetVersion()}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sent[r]++
	if r.Key == kafkaapi.ApiVersions {
		if e.release == "" {
			return nil, nil, false
		}
		return e.apiVersions(req.(*kmsg.ApiVersionsRequest)), nil, true
	}
	acc, ok := e.accept[r.Key]
	if ok && acc.Has(r.Version) {
		return nil, nil, false
	}
	why := fmt.Sprintf("not advertised by kfake under Kafka %s's ranges", e.releaseName())
	if ok {
		why = fmt.Sprintf("Kafka %s accepts %s %s", e.releaseName(), kmsg.NameForKey(r.Key), acc)
		if relMin, _ := kafkaapi.MinVersion(r.Key, e.release); r.Version >= relMin && r.Version <= acc.Max {
			why = fmt.Sprintf("kfake cannot serve it (it implements %s %s)", kmsg.NameForKey(r.Key), acc)
		}
	}
	e.refused[r] = why
	return nil, fmt.Errorf("refused %s: %s", r, why), true
}

func (e *Emulation) releaseName() string {
	if e.release == "" {
		return "kfake"
	}
	return e.release
}

// apiVersions answers like a broker of the release: a version above its
// own range gets a v0 answer with UNSUPPORTED_VERSION and only the
// ApiVersions range, so the client retries lower (KIP-511).
func (e *Emulation) apiVersions(req *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.Version = req.Version
	own := e.accept[kafkaapi.ApiVersions]
	if req.Version > own.Max {
		resp.Version = 0
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = kafkaapi.ApiVersions, own.Min, own.Max
		resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{k}
		return resp
	}
	resp.ApiKeys = slices.Clone(e.adv.ApiKeys)
	resp.SupportedFeatures = slices.Clone(e.adv.SupportedFeatures)
	resp.FinalizedFeatures = slices.Clone(e.adv.FinalizedFeatures)
	resp.FinalizedFeaturesEpoch = e.adv.FinalizedFeaturesEpoch
	return resp
}

// Versions returns what the broker advertises in ApiVersions since Attach.
func (e *Emulation) Versions() kafkaapi.Versions {
	e.mu.Lock()
	defer e.mu.Unlock()
	bv := kafkaapi.Versions{}
	for _, k := range e.adv.ApiKeys {
		bv[k.ApiKey] = kafkaapi.Range{Min: k.MinVersion, Max: k.MaxVersion}
	}
	return bv
}

// Sent returns how often each request was received since Attach.
func (e *Emulation) Sent() map[Request]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.sent)
}

// Refused returns each request refused since Attach, with why.
func (e *Emulation) Refused() map[Request]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.refused)
}

// askVersions asks the broker at addrs for its ApiVersions answer.
func askVersions(addrs []string) (*kmsg.ApiVersionsResponse, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	return resp, nil
}
