package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/pyramid-crm/pyramid/kafkaio"
)

// kafkaFlags are the connection options shared by every command that talks
// to Kafka. Secrets come only from the environment or from files, never
// from flags (which show up in process listings) and are never logged.
type kafkaFlags struct {
	tls        bool
	caFile     string
	skipVerify bool
	mechanism  string
	user       string
}

func (k *kafkaFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&k.tls, "kafka-tls", envBool("PYRAMID_KAFKA_TLS"), "connect to Kafka with TLS [PYRAMID_KAFKA_TLS]")
	fs.StringVar(&k.caFile, "kafka-tls-ca", os.Getenv("PYRAMID_KAFKA_TLS_CA"), "PEM file of CAs to trust for Kafka TLS [PYRAMID_KAFKA_TLS_CA]")
	fs.BoolVar(&k.skipVerify, "kafka-tls-insecure", false, "do not verify the brokers' certificates (testing only)")
	fs.StringVar(&k.mechanism, "kafka-sasl", os.Getenv("PYRAMID_KAFKA_SASL"), "SASL mechanism: plain, scram-sha-256 or scram-sha-512 [PYRAMID_KAFKA_SASL]")
	fs.StringVar(&k.user, "kafka-sasl-user", os.Getenv("PYRAMID_KAFKA_SASL_USER"), "SASL user name [PYRAMID_KAFKA_SASL_USER]; the password comes from PYRAMID_KAFKA_SASL_PASSWORD or the file named by PYRAMID_KAFKA_SASL_PASSWORD_FILE")
}

// dialer builds the kafka-go dialer for these options.
func (k *kafkaFlags) dialer() (*kafka.Dialer, error) {
	d := kafkaio.Dialer()
	if k.tls || k.caFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: k.skipVerify} //nolint:gosec // opt-in flag
		if k.caFile != "" {
			pem, err := os.ReadFile(k.caFile)
			if err != nil {
				return nil, fmt.Errorf("--kafka-tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--kafka-tls-ca %s: no PEM certificates found", k.caFile)
			}
			cfg.RootCAs = pool
		}
		d.TLS = cfg
	}
	if k.mechanism != "" {
		pass, err := secret("PYRAMID_KAFKA_SASL_PASSWORD")
		if err != nil {
			return nil, err
		}
		if k.user == "" || pass == "" {
			return nil, fmt.Errorf("--kafka-sasl %s needs --kafka-sasl-user and PYRAMID_KAFKA_SASL_PASSWORD (or _FILE)", k.mechanism)
		}
		var m sasl.Mechanism
		switch strings.ToLower(k.mechanism) {
		case "plain":
			m = plain.Mechanism{Username: k.user, Password: pass}
		case "scram-sha-256":
			m, err = scram.Mechanism(scram.SHA256, k.user, pass)
		case "scram-sha-512":
			m, err = scram.Mechanism(scram.SHA512, k.user, pass)
		default:
			return nil, fmt.Errorf("--kafka-sasl %q: must be plain, scram-sha-256 or scram-sha-512", k.mechanism)
		}
		if err != nil {
			return nil, fmt.Errorf("--kafka-sasl: %w", err)
		}
		d.SASLMechanism = m
	}
	return d, nil
}

// secret reads NAME from the environment, or the file named by NAME_FILE.
func secret(name string) (string, error) {
	if v := os.Getenv(name); v != "" {
		return v, nil
	}
	if f := os.Getenv(name + "_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %w", name, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", nil
}

func envBool(name string) bool {
	switch strings.ToLower(os.Getenv(name)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
