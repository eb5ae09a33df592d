package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/pyramid-crm/pyramid/internal/kafkaapi"
)

// checkVersions asks every broker of the cluster which protocol API
// versions it accepts, logs them, and returns a *versionError naming each
// request Pyramid would send that a broker refuses (kafkaapi.Check). A
// broker refuses an unsupported version by closing the connection, which
// kafka-go reports as EOF and retries forever; checking first turns that
// into one clear message. A broker that cannot be reached is skipped with
// a warning, so that one broker down does not keep Pyramid from starting;
// when none answers, the error is returned for the caller to retry.
func checkVersions(ctx context.Context, cl *kafka.Client, log *slog.Logger) error {
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}})
	if err != nil {
		return fmt.Errorf("reading the broker list from %s: %w", cl.Addr, err)
	}
	var problems []string
	var unreachable error
	answered := 0
	for _, b := range md.Brokers {
		addr := net.JoinHostPort(b.Host, strconv.Itoa(b.Port))
		resp, err := cl.ApiVersions(ctx, &kafka.ApiVersionsRequest{Addr: kafka.TCP(addr)})
		if err == nil {
			err = resp.Error
		}
		if err != nil {
			unreachable = fmt.Errorf("asking broker %d (%s) for its API versions: %w", b.ID, addr, err)
			log.Warn("cannot ask a broker for its API versions; not checked", "broker", b.ID, "addr", addr, "err", err)
			continue
		}
		answered++
		bv := kafkaapi.Versions{}
		for _, k := range resp.ApiKeys {
			bv[int16(k.ApiKey)] = kafkaapi.Range{Min: int16(k.MinVersion), Max: int16(k.MaxVersion)}
		}
		log.Info("kafka broker API versions", "broker", b.ID, "addr", addr,
			"kafka", kafkaapi.Era(bv), "apis", kafkaapi.Summary(bv))
		for _, p := range kafkaapi.Check(bv) {
			problems = append(problems, fmt.Sprintf("broker %d (%s): %v", b.ID, addr, p))
		}
	}
	if len(problems) > 0 {
		return &versionError{problems}
	}
	if answered == 0 && unreachable != nil {
		return unreachable
	}
	return nil
}

// versionError is a broker that refuses a request Pyramid needs; retrying
// does not help.
type versionError struct{ problems []string }

func (e *versionError) Error() string {
	return "Kafka does not accept the protocol versions Pyramid sends (supported Kafka releases are listed in docs/operations.md): " +
		strings.Join(e.problems, "; ")
}
