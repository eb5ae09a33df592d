package kafkaio

// AppendBatch exposes appendBatch to the package's external tests.
var AppendBatch = appendBatch
