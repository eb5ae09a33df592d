package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pyramid-crm/pyramid/broker"
	"github.com/pyramid-crm/pyramid/internal/kafkaapi"
	"github.com/pyramid-crm/pyramid/logging"
)

func init() {
	register("broker", "run an in-process Kafka broker (kfake) for the demo and local testing", cmdBroker)
}

func cmdBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9092", "host:port to listen on; clients are told to reconnect to this address")
	partitions := fs.Int("partitions", broker.DefaultPartitions, "partitions of every auto-created topic")
	dataDir := fs.String("data-dir", "", "directory to persist topics, records and committed offsets in (default: memory only)")
	topics := fs.String("topics", "", "comma-separated topics to create at start (others are created on first use)")
	release := fs.String("kafka-release", "", "accept only the protocol versions of this Kafka release, refusing others as it does: "+strings.Join(kafkaapi.Releases, ", ")+" (default: every version kfake implements)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", logging.FormatAuto, "json, text, or auto (text on a terminal)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *partitions < 1 {
		fmt.Fprintf(stderr, "broker: --partitions must be at least 1, not %d\n", *partitions)
		return errUsage
	}
	log, err := logging.New(stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	log = log.With("component", "broker")
	opts := broker.Options{
		Listen:     *listen,
		Partitions: *partitions,
		DataDir:    *dataDir,
		Logger:     log,
		Release:    *release,
	}
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			opts.Topics = append(opts.Topics, t)
		}
	}
	b, err := broker.Start(opts)
	if err != nil {
		return err
	}
	log.Info("listening", "addrs", strings.Join(b.Addrs(), ","), "partitions", *partitions, "data_dir", *dataDir, "kafka_release", *release)
	<-ctx.Done()
	log.Info("stopping")
	return b.Close()
}
