package deploy

import (
	"slices"
	"strings"
	"testing"

	"github.com/pyramid-crm/pyramid/internal/kafkaapi"
)

// TestComposeKafkaIsSupported checks that the compose stack runs a Kafka
// release Pyramid is tested against and accepts every request of (see
// docs/operations.md), and that the topic-creating service uses the same
// image.
func TestComposeKafkaIsSupported(t *testing.T) {
	services := composeServices(t)
	image := str(services["kafka"], "image")
	tag, ok := strings.CutPrefix(image, "apache/kafka:")
	if !ok {
		t.Fatalf("compose kafka image %q is not apache/kafka", image)
	}
	// 4.0.0 and 4.0.1 differ (JoinGroup v0-1); other releases by minor.
	rel := tag
	if parts := strings.Split(tag, "."); len(parts) >= 2 && tag != "4.0.0" {
		rel = parts[0] + "." + parts[1]
		if rel == "4.0" {
			rel = "4.0.1"
		}
	}
	if !slices.Contains(kafkaapi.Releases, rel) {
		t.Errorf("compose runs Kafka %s, which is not one of the releases Pyramid is tested against: %v", tag, kafkaapi.Releases)
	} else if p := kafkaapi.Check(kafkaapi.Advertised(rel)); len(p) > 0 {
		t.Errorf("compose runs Kafka %s, which refuses what Pyramid sends: %v", tag, p)
	}
	if got := str(services["kafka-init"], "image"); got != image {
		t.Errorf("kafka-init image %q, want the broker's %q", got, image)
	}
}
